package dynamostore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sixpotify/top-tracks/internal/store"
)

// batchLimit is the most requests one BatchWriteItem takes.
const batchLimit = 25

// Save makes the artist's rows exactly r.Tracks (ranked by position in
// Spotify's answer), then writes the artists row. It returns an error
// wrapping store.ErrStale, having written nothing, when the store holds a
// newer fetch of the artist. See the package comment for how concurrent
// Saves of one artist are kept apart.
//
// A track id that Spotify returned twice is kept at its first position only.
func (s *Store) Save(ctx context.Context, r store.Result) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("dynamostore: save %q: %w: %w", r.ArtistID, store.ErrRejected, err)
	}
	fetched := formatTime(r.FetchedAt)
	hash := store.ListHash(r)
	if !s.opts.WriteUnchanged && !r.FirstFetch {
		done, err := s.saveUnchanged(ctx, r, fetched, hash)
		if err != nil {
			return fmt.Errorf("dynamostore: save %s: %w", r.ArtistID, rejected(err))
		}
		if done {
			return nil
		}
	}
	expires := store.ExpiresAt(r.FetchedAt, s.opts.RetainFor)
	puts, keep := s.trackPuts(r, fetched, expires)
	l, err := s.lock(ctx, r.ArtistID, fetched)
	if err != nil {
		return fmt.Errorf("dynamostore: save %s: %w", r.ArtistID, rejected(err))
	}
	if err := s.writeLocked(ctx, l, r, fetched, hash, expires, puts, keep); err != nil {
		if uerr := s.unlock(ctx, l); uerr != nil {
			err = fmt.Errorf("%w (and releasing the lease failed: %v)", err, uerr)
		}
		return fmt.Errorf("dynamostore: save %s: %w", r.ArtistID, rejected(err))
	}
	return nil
}

// saveUnchanged is the change-aware fast path: when the artists row says the
// store holds a result with the same list hash, market and status, whose
// rows expire no sooner than the refresh margin allows, one conditional
// UpdateItem moves its fetched_at forward and Save is done. It reports
// false, having written nothing, when the condition does not hold (a
// changed list, a newer fetch, a lease held, rows written before expires_at
// existed or due for a new expiry): the full Save decides then.
//
// The fast path leaves expires_at as it is, on the artists row and the
// track rows alike, so that an artist's rows always expire together: they
// are rewritten with a new expiry once less than nine tenths of RetainFor
// is left of it, so an artist fetched again and again keeps its rows, and
// no row outlives its artist's last fetch by more than RetainFor.
func (s *Store) saveUnchanged(ctx context.Context, r store.Result, fetched, hash string) (bool, error) {
	retain := s.opts.RetainFor
	minExpires := store.ExpiresAt(r.FetchedAt, retain-retain/10)
	done := false
	err := s.retrying(ctx, func(ctx context.Context) error {
		s.stats.unchangedCalls.Add(1)
		_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.artists,
			Key:       artistKey(r.ArtistID),
			// A success clears the failure recorded, as the full commit's
			// PutItem does.
			UpdateExpression: aws.String("SET #at = :at REMOVE #e, #eat"),
			ConditionExpression: aws.String("#h = :h AND #m = :m AND #st = :st AND #at <= :at" +
				" AND (attribute_not_exists(#until) OR #until < :now) AND #exp >= :minexp"),
			ExpressionAttributeNames: map[string]string{
				"#h": attrListHash, "#m": attrMarket, "#st": attrStatus, "#at": attrFetchedAt, "#until": attrLockUntil,
				"#e": attrLastError, "#eat": attrLastErrorAt,
				"#exp": attrExpiresAt,
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":h": str(hash), ":m": str(r.Market), ":st": str(string(r.Status)), ":at": str(fetched),
				":now": num(s.opts.Now().UnixMilli()), ":minexp": num(minExpires),
			},
		})
		switch {
		case err == nil:
			done = true
			return nil
		case isConditionFailed(err):
			return nil
		}
		return err
	})
	if done {
		s.stats.unchanged.Add(1)
	}
	return done, err
}

// trackPuts builds the put requests of the result's tracks, the first of
// each id only, and returns the set of ids kept.
func (s *Store) trackPuts(r store.Result, fetched string, expires int64) ([]types.WriteRequest, map[string]bool) {
	puts := make([]types.WriteRequest, 0, len(r.Tracks))
	keep := make(map[string]bool, len(r.Tracks))
	var b slab
	for i, t := range r.Tracks {
		if keep[t.ID] {
			s.stats.duplicateTracks.Add(1)
			s.opts.Logger.Warn("spotify returned a track twice; keeping the first",
				"artist_id", r.ArtistID, "track_id", t.ID, "rank", i+1)
			continue
		}
		keep[t.ID] = true
		item := b.trackAttrs(r.ArtistID, i+1, r.Market, fetched, expires, &r.Tracks[i])
		puts = append(puts, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	return puts, keep
}

// lease is a Save's hold on an artist.
type lease struct {
	artistID string
	token    string
	// deadline (monotonic) is when the holder stops writing: three
	// quarters of the lease after the request that took it was sent.
	deadline time.Time
	// stored is the ids of the artist's track rows, as the artists row
	// listed them when the lease was taken; known says whether it did.
	// It did not for a row written before rows listed their ids, one whose
	// last Save did not commit, or when the answer that took the lease was
	// lost: then the tracks table is asked (a Query). No row at all is an
	// artist never saved: it has no track rows.
	stored []string
	known  bool
	// wrote says writeTracks may have sent writes to the tracks table.
	wrote bool
}

// lock takes the artist's lease, waiting while another writer holds it, or
// returns an error wrapping store.ErrStale when a newer fetch is stored.
func (s *Store) lock(ctx context.Context, artistID, fetched string) (*lease, error) {
	token := rand.Text()
	var l *lease
	err := s.retrying(ctx, func(ctx context.Context) error {
		sent := time.Now()
		now := s.opts.Now()
		s.stats.lockCalls.Add(1)
		// Taking the lease removes track_ids and list_hash, atomically
		// with reading them: until the commit writes them anew, the row
		// claims nothing about the track rows, so a Save that dies part
		// way leaves a row that makes the next one ask the tracks table
		// (and not take the unchanged fast path).
		out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:           &s.artists,
			Key:                 artistKey(artistID),
			UpdateExpression:    aws.String("SET #owner = :owner, #until = :until REMOVE #ids, #h"),
			ConditionExpression: aws.String("(attribute_not_exists(#until) OR #until < :now) AND (attribute_not_exists(#at) OR #at <= :at)"),
			ExpressionAttributeNames: map[string]string{
				"#owner": attrLockOwner, "#until": attrLockUntil, "#at": attrFetchedAt,
				"#ids": attrTrackIDs, "#h": attrListHash,
			},
			ReturnValues: types.ReturnValueAllOld,
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":owner": str(token),
				":until": num(now.Add(s.opts.Lease).UnixMilli()),
				":now":   num(now.UnixMilli()),
				":at":    str(fetched),
			},
		})
		if err != nil && !isConditionFailed(err) {
			return err
		}
		if err != nil {
			// Tell a newer fetch from a busy artist.
			cur, err := s.getArtistRow(ctx, artistID)
			if err != nil {
				return err
			}
			if at := attrString(cur, attrFetchedAt); at > fetched {
				return fmt.Errorf("stored fetch %s is newer than %s: %w", at, fetched, store.ErrStale)
			}
			// The SDK may have retried an UpdateItem whose first attempt
			// did take the lease: then the lease is ours.
			if attrString(cur, attrLockOwner) != token {
				s.stats.lockWaits.Add(1)
				return &again{errors.New("another writer holds the artist's lease")}
			}
			// Ours, but what the row held before is gone with the lost
			// answer: the tracks table will tell.
			l = &lease{artistID: artistID, token: token, deadline: sent.Add(s.opts.Lease * 3 / 4)}
			return nil
		}
		l = &lease{artistID: artistID, token: token, deadline: sent.Add(s.opts.Lease * 3 / 4)}
		old := out.Attributes
		switch ids, ok := attrStrings(old, attrTrackIDs); {
		case len(old) == 0:
			l.known = true // never saved: no track rows
		case ok && attrString(old, attrLockOwner) == "":
			// A lease that ran out under the ids means a writer that
			// does not remove them (an earlier version) died writing.
			l.stored, l.known = ids, true
		}
		return nil
	})
	return l, err
}

// writeLocked converges the tracks and commits the artists row, within the
// lease.
func (s *Store) writeLocked(ctx context.Context, l *lease, r store.Result, fetched, hash string, expires int64, puts []types.WriteRequest, keep map[string]bool) error {
	wctx, cancel := context.WithDeadline(ctx, l.deadline)
	defer cancel()
	err := s.writeTracks(wctx, l, puts, keep)
	if err == nil {
		ids := make([]string, 0, len(puts))
		for _, p := range puts {
			ids = append(ids, attrString(p.PutRequest.Item, attrID))
		}
		err = s.commit(wctx, l, artistItem{
			ArtistID:   r.ArtistID,
			FetchedAt:  fetched,
			Market:     r.Market,
			Status:     string(r.Status),
			TrackCount: len(puts),
			ListHash:   hash,
			ExpiresAt:  expires,
			TrackIDs:   ids,
		})
	}
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return fmt.Errorf("the write lease ran out after %v: %w", s.opts.Lease*3/4, err)
	}
	return err
}

// writeTracks puts the result's tracks and deletes the artist's other rows,
// puts first so that a reader sees a track that stays throughout. The rows
// there are are the ones the artists row listed when the lease was taken,
// or, when it listed none, those a Query finds.
func (s *Store) writeTracks(ctx context.Context, l *lease, puts []types.WriteRequest, keep map[string]bool) error {
	artistID := l.artistID
	existing := l.stored
	if !l.known {
		var err error
		if existing, err = s.trackIDs(ctx, artistID); err != nil {
			return err
		}
	}
	l.wrote = true
	reqs := puts
	for _, id := range existing {
		if !keep[id] {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{
				Key: map[string]types.AttributeValue{attrArtistID: str(artistID), attrID: str(id)},
			}})
		}
	}
	// Puts are of distinct ids and deletes of ids not put, so no chunk
	// names one key twice.
	for len(reqs) > 0 {
		n := min(batchLimit, len(reqs))
		if err := s.batchWrite(ctx, reqs[:n]); err != nil {
			return err
		}
		reqs = reqs[n:]
	}
	return nil
}

// trackIDs lists the ids of the artist's rows.
func (s *Store) trackIDs(ctx context.Context, artistID string) ([]string, error) {
	var ids []string
	err := s.query(ctx, &dynamodb.QueryInput{
		TableName:                 &s.tracks,
		KeyConditionExpression:    aws.String("#a = :a"),
		ProjectionExpression:      aws.String("#id"),
		ExpressionAttributeNames:  map[string]string{"#a": attrArtistID, "#id": attrID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":a": str(artistID)},
		ConsistentRead:            aws.Bool(true),
	}, func(item map[string]types.AttributeValue) error {
		id := attrString(item, attrID)
		if id == "" {
			return fmt.Errorf("a tracks row of %s has no id", artistID)
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list track ids: %w", err)
	}
	return ids, nil
}

// batchWrite sends at most batchLimit requests, resending UnprocessedItems
// with backoff until all are written or the time is up.
func (s *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	pending := reqs
	err := s.retrying(ctx, func(ctx context.Context) error {
		s.stats.batchWriteCalls.Add(1)
		out, err := s.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{s.tracks: pending},
		})
		if err != nil {
			return err
		}
		left := out.UnprocessedItems[s.tracks]
		sentPuts, sentDels := countKinds(pending)
		leftPuts, leftDels := countKinds(left)
		s.stats.itemsPut.Add(int64(sentPuts - leftPuts))
		s.stats.itemsDeleted.Add(int64(sentDels - leftDels))
		if len(left) == 0 {
			return nil
		}
		s.stats.unprocessed.Add(int64(len(left)))
		err = fmt.Errorf("%d of %d writes unprocessed", len(left), len(pending))
		pending = left
		return &again{err}
	})
	if err != nil {
		return fmt.Errorf("batch write: %w", err)
	}
	return nil
}

func countKinds(reqs []types.WriteRequest) (puts, deletes int) {
	for _, r := range reqs {
		if r.PutRequest != nil {
			puts++
		} else {
			deletes++
		}
	}
	return puts, deletes
}

// commit writes the artists row in place of the lease, if the lease is
// still ours.
func (s *Store) commit(ctx context.Context, l *lease, it artistItem) error {
	item := artistAttrs(it)
	err := s.retrying(ctx, func(ctx context.Context) error {
		s.stats.putCalls.Add(1)
		_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                &s.artists,
			Item:                     item,
			ConditionExpression:      aws.String("#owner = :owner AND (attribute_not_exists(#at) OR #at <= :at)"),
			ExpressionAttributeNames: map[string]string{"#owner": attrLockOwner, "#at": attrFetchedAt},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":owner": str(l.token),
				":at":    str(it.FetchedAt),
			},
		})
		if err == nil || !isConditionFailed(err) {
			return err
		}
		cur, err := s.getArtistRow(ctx, l.artistID)
		if err != nil {
			return err
		}
		switch at := attrString(cur, attrFetchedAt); {
		case at > it.FetchedAt:
			return fmt.Errorf("stored fetch %s is newer than %s: %w", at, it.FetchedAt, store.ErrStale)
		case attrString(cur, attrLockOwner) == "" && at == it.FetchedAt &&
			attrString(cur, attrStatus) == it.Status && attrString(cur, attrMarket) == it.Market &&
			attrNumber(cur, attrTrackCount) == fmt.Sprint(it.TrackCount):
			// The SDK retried a PutItem whose first attempt landed.
			return nil
		default:
			return errors.New("lost the artist's lease to another writer before the artists row was written")
		}
	})
	if err != nil {
		return fmt.Errorf("write artists row: %w", err)
	}
	return nil
}

// unlock releases a lease that did not commit: it removes a placeholder row
// (a first Save) to which no track rows may have been written, or else the
// lease attributes, leaving a row that lists no track ids, so that the next
// Save asks the tracks table what is there. It runs even when ctx has ended.
func (s *Store) unlock(ctx context.Context, l *lease) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	values := map[string]types.AttributeValue{":owner": str(l.token)}
	return s.retrying(ctx, func(ctx context.Context) error {
		if !l.wrote {
			_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
				TableName:                 &s.artists,
				Key:                       artistKey(l.artistID),
				ConditionExpression:       aws.String("#owner = :owner AND attribute_not_exists(#at)"),
				ExpressionAttributeNames:  map[string]string{"#owner": attrLockOwner, "#at": attrFetchedAt},
				ExpressionAttributeValues: values,
			})
			if err == nil || !isConditionFailed(err) {
				return err
			}
		}
		_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &s.artists,
			Key:                       artistKey(l.artistID),
			UpdateExpression:          aws.String("REMOVE #owner, #until"),
			ConditionExpression:       aws.String("#owner = :owner"),
			ExpressionAttributeNames:  map[string]string{"#owner": attrLockOwner, "#until": attrLockUntil},
			ExpressionAttributeValues: values,
		})
		if isConditionFailed(err) {
			return nil // no longer ours: nothing to release
		}
		return err
	})
}

// setUnlessLater sets attrs on the artists item of key with one conditional
// UpdateItem, retrying throttles, unless the item holds a later value of the
// attribute by than attrs[by] (a time in store.TimeFormat, whose string
// order is time order): then it leaves the item as it is, and that is no
// error.
func (s *Store) setUnlessLater(ctx context.Context, key, by string, attrs map[string]types.AttributeValue) error {
	names := slices.Sorted(maps.Keys(attrs))
	refs, exprNames := expressionNames(names)
	values := make(map[string]types.AttributeValue, len(names))
	sets := make([]string, len(names))
	var condition string
	for i, name := range names {
		v := ":v" + strconv.Itoa(i)
		values[v] = attrs[name]
		sets[i] = refs[i] + " = " + v
		if name == by {
			condition = fmt.Sprintf("attribute_not_exists(%s) OR %s <= %s", refs[i], refs[i], v)
		}
	}
	return s.retrying(ctx, func(ctx context.Context) error {
		_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &s.artists,
			Key:                       artistKey(key),
			UpdateExpression:          aws.String("SET " + strings.Join(sets, ", ")),
			ConditionExpression:       aws.String(condition),
			ExpressionAttributeNames:  exprNames,
			ExpressionAttributeValues: values,
		})
		if isConditionFailed(err) {
			return nil // a later one is recorded
		}
		return err
	})
}

// getArtistRow reads the artists row with a consistent read, only the
// attributes named in attrs when there are any; nil when there is none.
func (s *Store) getArtistRow(ctx context.Context, artistID string, attrs ...string) (map[string]types.AttributeValue, error) {
	in := &dynamodb.GetItemInput{
		TableName:      &s.artists,
		Key:            artistKey(artistID),
		ConsistentRead: aws.Bool(true),
	}
	if len(attrs) > 0 {
		var refs []string
		refs, in.ExpressionAttributeNames = expressionNames(attrs)
		in.ProjectionExpression = aws.String(strings.Join(refs, ", "))
	}
	out, err := s.client.GetItem(ctx, in)
	if err != nil {
		return nil, err
	}
	return out.Item, nil
}

// expressionNames names attrs #a0, #a1, … for an expression: refs[i] stands
// for attrs[i], and names maps each ref to its attribute.
func expressionNames(attrs []string) (refs []string, names map[string]string) {
	refs = make([]string, len(attrs))
	names = make(map[string]string, len(attrs))
	for i, a := range attrs {
		refs[i] = "#a" + strconv.Itoa(i)
		names[refs[i]] = a
	}
	return refs, names
}

func attrString(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// attrStrings reads a list of strings; ok is false when the item has no
// such list.
func attrStrings(item map[string]types.AttributeValue, name string) (v []string, ok bool) {
	l, ok := item[name].(*types.AttributeValueMemberL)
	if !ok {
		return nil, false
	}
	v = make([]string, 0, len(l.Value))
	for _, e := range l.Value {
		s, ok := e.(*types.AttributeValueMemberS)
		if !ok {
			return nil, false
		}
		v = append(v, s.Value)
	}
	return v, true
}

func attrNumber(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		return v.Value
	}
	return ""
}

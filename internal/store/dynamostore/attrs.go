package dynamostore

import (
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sixpotify/top-tracks/internal/spotify"
)

// The rows a Save writes are built here field by field, not by
// attributevalue's reflection, which was a tenth of the worker's CPU per
// artist. They are the attribute values the encoder (TagKey "json", its
// defaults) makes of trackItem and artistItem, which the reads still decode
// with; TestAttrsMatchTheEncoder holds the two together: a nil map, slice or
// pointer is NULL, an empty one an empty M or L, an empty string an S "";
// but a field tagged omitempty (popularity, preview_url, isrc, expires_at)
// is absent when nil or 0, so that "Spotify did not say" is no attribute.

// slab hands out the scalar attribute values of one Save's rows from
// chunks, a few allocations instead of one per value: the SDK only reads
// them, and they all live as long as the Save's requests.
type slab struct {
	s []types.AttributeValueMemberS
	n []types.AttributeValueMemberN
}

const slabChunk = 64

func (b *slab) str(v string) types.AttributeValue {
	if len(b.s) == cap(b.s) {
		b.s = make([]types.AttributeValueMemberS, 0, slabChunk)
	}
	b.s = append(b.s, types.AttributeValueMemberS{Value: v})
	return &b.s[len(b.s)-1]
}

func (b *slab) num(v int) types.AttributeValue {
	if len(b.n) == cap(b.n) {
		b.n = make([]types.AttributeValueMemberN, 0, slabChunk)
	}
	b.n = append(b.n, types.AttributeValueMemberN{Value: strconv.Itoa(v)})
	return &b.n[len(b.n)-1]
}

// trackAttrs is the tracks row of t at rank for the artist, expiring at
// expires (epoch seconds; 0: no expires_at). A field Spotify left out
// (popularity, preview_url, isrc: nil) is absent from the row.
func (b *slab) trackAttrs(artistID string, rank int, market, fetched string, expires int64, t *spotify.Track) map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{
		attrArtistID:    b.str(artistID),
		attrID:          b.str(t.ID),
		"rank":          b.num(rank),
		attrMarket:      b.str(market),
		attrFetchedAt:   b.str(fetched),
		"name":          b.str(t.Name),
		"duration_ms":   b.num(t.DurationMS),
		"explicit":      boolean(t.Explicit),
		"uri":           b.str(t.URI),
		"album":         b.albumAttr(&t.Album),
		"artists":       b.artistsAttr(t.Artists),
		"external_urls": b.stringMap(t.ExternalURLs),
		"track_number":  b.num(t.TrackNumber),
	}
	if t.Popularity != nil {
		m["popularity"] = b.num(*t.Popularity)
	}
	if t.PreviewURL != nil {
		m["preview_url"] = b.str(*t.PreviewURL)
	}
	if t.ISRC != nil {
		m["isrc"] = b.str(*t.ISRC)
	}
	if expires != 0 {
		m[attrExpiresAt] = num(expires)
	}
	return m
}

// artistAttrs is the artists row it.
func artistAttrs(it artistItem) map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{
		attrArtistID:   str(it.ArtistID),
		attrFetchedAt:  str(it.FetchedAt),
		attrMarket:     str(it.Market),
		attrStatus:     str(it.Status),
		attrTrackCount: numInt(it.TrackCount),
	}
	if it.ListHash != "" {
		m[attrListHash] = str(it.ListHash)
	}
	if it.ExpiresAt != 0 {
		m[attrExpiresAt] = num(it.ExpiresAt)
	}
	ids := make([]types.AttributeValue, len(it.TrackIDs))
	for i, id := range it.TrackIDs {
		ids[i] = str(id)
	}
	m[attrTrackIDs] = &types.AttributeValueMemberL{Value: ids}
	return m
}

func (b *slab) albumAttr(a *spotify.Album) types.AttributeValue {
	var images types.AttributeValue = null
	if a.Images != nil {
		l := make([]types.AttributeValue, len(a.Images))
		for i := range a.Images {
			img := &a.Images[i]
			l[i] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				"url":    b.str(img.URL),
				"height": b.intPtr(img.Height),
				"width":  b.intPtr(img.Width),
			}}
		}
		images = &types.AttributeValueMemberL{Value: l}
	}
	return &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
		"id":                     b.str(a.ID),
		"name":                   b.str(a.Name),
		"album_type":             b.str(a.AlbumType),
		"total_tracks":           b.num(a.TotalTracks),
		"release_date":           b.str(a.ReleaseDate),
		"release_date_precision": b.str(a.ReleaseDatePrecision),
		"uri":                    b.str(a.URI),
		"images":                 images,
		"external_urls":          b.stringMap(a.ExternalURLs),
		"artists":                b.artistsAttr(a.Artists),
	}}
}

func (b *slab) artistsAttr(as []spotify.SimpleArtist) types.AttributeValue {
	if as == nil {
		return null
	}
	l := make([]types.AttributeValue, len(as))
	for i := range as {
		a := &as[i]
		l[i] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"id":            b.str(a.ID),
			"name":          b.str(a.Name),
			"uri":           b.str(a.URI),
			"external_urls": b.stringMap(a.ExternalURLs),
		}}
	}
	return &types.AttributeValueMemberL{Value: l}
}

func (b *slab) stringMap(m map[string]string) types.AttributeValue {
	if m == nil {
		return null
	}
	v := make(map[string]types.AttributeValue, len(m))
	for k, s := range m {
		v[k] = b.str(s)
	}
	return &types.AttributeValueMemberM{Value: v}
}

// null is the one NULL value every nil field shares, as avTrue and avFalse
// are the booleans': the SDK only reads them.
var null types.AttributeValue = &types.AttributeValueMemberNULL{Value: true}

func numInt(v int) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.Itoa(v)}
}

var (
	avTrue  types.AttributeValue = &types.AttributeValueMemberBOOL{Value: true}
	avFalse types.AttributeValue = &types.AttributeValueMemberBOOL{Value: false}
)

func boolean(v bool) types.AttributeValue {
	if v {
		return avTrue
	}
	return avFalse
}

func (b *slab) intPtr(p *int) types.AttributeValue {
	if p == nil {
		return null
	}
	return b.num(*p)
}

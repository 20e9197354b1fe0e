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
// pointer is NULL, an empty one an empty M or L, an empty string an S "".

// trackAttrs is the tracks row of t at rank for the artist.
func trackAttrs(artistID string, rank int, market, fetched string, t *spotify.Track) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrArtistID:    str(artistID),
		attrID:          str(t.ID),
		"rank":          numInt(rank),
		attrMarket:      str(market),
		attrFetchedAt:   str(fetched),
		"name":          str(t.Name),
		"popularity":    numInt(t.Popularity),
		"duration_ms":   numInt(t.DurationMS),
		"explicit":      boolean(t.Explicit),
		"uri":           str(t.URI),
		"album":         albumAttr(&t.Album),
		"artists":       artistsAttr(t.Artists),
		"external_urls": stringMap(t.ExternalURLs),
		"preview_url":   strPtr(t.PreviewURL),
		"track_number":  numInt(t.TrackNumber),
	}
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
	ids := make([]types.AttributeValue, len(it.TrackIDs))
	for i, id := range it.TrackIDs {
		ids[i] = str(id)
	}
	m[attrTrackIDs] = &types.AttributeValueMemberL{Value: ids}
	return m
}

func albumAttr(a *spotify.Album) types.AttributeValue {
	var images types.AttributeValue = null
	if a.Images != nil {
		l := make([]types.AttributeValue, len(a.Images))
		for i := range a.Images {
			img := &a.Images[i]
			l[i] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				"url":    str(img.URL),
				"height": intPtr(img.Height),
				"width":  intPtr(img.Width),
			}}
		}
		images = &types.AttributeValueMemberL{Value: l}
	}
	return &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
		"id":                     str(a.ID),
		"name":                   str(a.Name),
		"album_type":             str(a.AlbumType),
		"total_tracks":           numInt(a.TotalTracks),
		"release_date":           str(a.ReleaseDate),
		"release_date_precision": str(a.ReleaseDatePrecision),
		"uri":                    str(a.URI),
		"images":                 images,
		"external_urls":          stringMap(a.ExternalURLs),
		"artists":                artistsAttr(a.Artists),
	}}
}

func artistsAttr(as []spotify.SimpleArtist) types.AttributeValue {
	if as == nil {
		return null
	}
	l := make([]types.AttributeValue, len(as))
	for i := range as {
		a := &as[i]
		l[i] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"id":            str(a.ID),
			"name":          str(a.Name),
			"uri":           str(a.URI),
			"external_urls": stringMap(a.ExternalURLs),
		}}
	}
	return &types.AttributeValueMemberL{Value: l}
}

func stringMap(m map[string]string) types.AttributeValue {
	if m == nil {
		return null
	}
	v := make(map[string]types.AttributeValue, len(m))
	for k, s := range m {
		v[k] = str(s)
	}
	return &types.AttributeValueMemberM{Value: v}
}

// null is the one NULL value every nil field shares: the SDK only reads it.
var null types.AttributeValue = &types.AttributeValueMemberNULL{Value: true}

func numInt(v int) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.Itoa(v)}
}

func boolean(v bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: v} }

func strPtr(p *string) types.AttributeValue {
	if p == nil {
		return null
	}
	return str(*p)
}

func intPtr(p *int) types.AttributeValue {
	if p == nil {
		return null
	}
	return numInt(*p)
}

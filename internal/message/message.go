// Package message encodes and decodes the body of a queue message: the JSON
// object {"artist_id": "…", "market": "US", "force": false} of the contract.
package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/market"
)

// Message asks for one artist's top tracks.
type Message struct {
	ArtistID string `json:"artist_id"`
	Market   string `json:"market,omitempty"`
	Force    bool   `json:"force,omitempty"`
}

// ErrPoison is wrapped by every Decode error: the body can never be processed,
// however often it is delivered.
var ErrPoison = errors.New("poison message")

// maxBody bounds the body Decode reads; SQS allows 256 KiB, a message needs far less.
const maxBody = 64 << 10

// Decode parses and validates a body. A body published through an SNS topic
// without raw delivery (an envelope with "Type":"Notification" and the body in
// "Message") is unwrapped first. The market, when given, is upper-cased and must
// be two letters.
func Decode(body []byte) (Message, error) {
	if len(body) > maxBody {
		return Message{}, fmt.Errorf("%w: body of %d bytes is larger than %d", ErrPoison, len(body), maxBody)
	}
	if inner, ok := unwrapSNS(body); ok {
		body = inner
	}
	var m Message
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("%w: body is not a JSON object: %v", ErrPoison, err)
	}
	if dec.More() {
		return Message{}, fmt.Errorf("%w: trailing data after the JSON object", ErrPoison)
	}
	if m.ArtistID == "" {
		return Message{}, fmt.Errorf("%w: artist_id is missing", ErrPoison)
	}
	if err := artistid.Check(m.ArtistID); err != nil {
		return Message{}, fmt.Errorf("%w: artist_id: %w", ErrPoison, err)
	}
	if m.Market != "" {
		m.Market = strings.ToUpper(m.Market)
		if err := market.Check(m.Market); err != nil {
			return Message{}, fmt.Errorf("%w: %w", ErrPoison, err)
		}
	}
	return m, nil
}

// Encode returns the body for m.
func Encode(m Message) ([]byte, error) {
	if err := artistid.Check(m.ArtistID); err != nil {
		return nil, fmt.Errorf("artist_id: %w", err)
	}
	if m.Market != "" {
		if err := market.Check(m.Market); err != nil {
			return nil, err
		}
	}
	return json.Marshal(m)
}

type snsEnvelope struct {
	Type     string  `json:"Type"`
	Message  *string `json:"Message"`
	TopicArn string  `json:"TopicArn"`
}

func unwrapSNS(body []byte) ([]byte, bool) {
	if !bytes.Contains(body, []byte(`"TopicArn"`)) {
		return nil, false
	}
	var env snsEnvelope
	if err := json.Unmarshal(body, &env); err != nil || env.Type != "Notification" || env.Message == nil {
		return nil, false
	}
	return []byte(*env.Message), true
}

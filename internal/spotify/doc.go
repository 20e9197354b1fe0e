// Package spotify is a small client of the Spotify Web API: it fetches an
// artist's top tracks with an app's client credentials.
//
// A Client is safe for concurrent use. It fetches one access token, shares it
// among its callers, refreshes it shortly before it expires and once more when
// Spotify answers 401; concurrent callers wait for one token request, never
// send one each. Every API request first waits on the configured Limiter, so
// one limiter shared by every goroutine keeps a process within its budget.
//
// Failures come back as errors to decide on with errors.Is and errors.As: a
// *RateLimitError for 429 (with Spotify's Retry-After), ErrNotFound,
// ErrForbidden (every 403 is a *RefusedError naming its kind: a Development
// Mode app, a lapsed Premium, or another refusal), ErrBadRequest and
// ErrInvalidArtist, which are permanent, and
// ErrServer, ErrTransport and ErrBadResponse, which are transient (see
// Temporary). No error names the client secret or an access token.
//
// A Track's Popularity, PreviewURL and ISRC are nil when Spotify left them
// out, as it does for some apps since 2026.
package spotify

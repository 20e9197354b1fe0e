// Package bench measures the worker against the design it replaces, on the
// same local emulators and the same Spotify stand-in (`make bench`).
//
// # The baseline
//
// Baseline is a faithful Go port of the original design: one Python AWS
// Lambda invocation per artist, fed by Lambda's SQS trigger. Each invocation,
// as the original did:
//
//  1. decodes the message body ({"artist_id": "…", "market": "…"}; market
//     defaults to US), with no validation beyond the JSON;
//  2. builds a fresh HTTP client and asks the token endpoint for a new
//     client-credentials token (POST, HTTP Basic auth): one token per artist;
//  3. GETs the artist's top tracks with that token, with no rate limiter and
//     no retry: any answer but 200 (a 429, a 5xx, a 404) fails the invocation;
//  4. writes one PutItem per track to the tracks table, then one PutItem of
//     the artists row, unconditionally and one at a time.
//
// The HTTP client keeps no connection alive, as Python's requests.post and
// requests.get (no Session) do: the token request and the top-tracks request
// each open a new connection. The DynamoDB and SQS clients are shared by all
// invocations, as boto3 clients created at module level are shared by warm
// invocations. Cold starts and Lambda's runtime are not simulated: the
// benchmark measures the design, not Lambda. The stand-in speaks plain HTTP
// in BenchmarkBaseline and HTTPS in BenchmarkTLS (TLSClientConfig), where
// each invocation pays two full TLS handshakes, as the original did against
// Spotify.
//
// The trigger (Run) stands for Lambda's SQS event source mapping with a batch
// size of one: it polls with ReceiveMessage (up to ten messages, never more
// than it has free concurrency for) and runs up to Concurrency invocations at
// once. After an invocation succeeds it deletes the message with a single
// DeleteMessage; after one fails it does nothing, so the message comes back
// when its visibility timeout ends, as it does under Lambda.
//
// The rows the baseline writes have the attributes of the contract's Tables
// section, encoded as the dynamostore package encodes them, so that a test
// can check the two designs store the same rows.
//
// # The benchmarks
//
// BenchmarkBaseline and BenchmarkWorker (in this package's tests) put the
// same number of artists through each design, each on a fresh queue and
// fresh tables, in one run against the same emulators and the same
// in-process stand-in. They report artists/s, this process's CPU per artist
// (getrusage: the stand-in runs in this process, the emulators do not), the
// emulators' CPU per artist, the Spotify, token, DynamoDB and SQS calls, and
// the peak of the Go runtime's memory. The worker also runs with 64 artists
// in flight, for the memory bar. After the benchmarks, TestMain prints the
// worker/baseline ratios. The machine is shared and small: on it both
// designs are bound by CPU (this process's and the emulators'), so read the
// ratios and the per-artist counts rather than the absolute rates.
package bench

package dynamostore

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/smithy-go"
	"github.com/sethvargo/go-retry"

	"github.com/sixpotify/top-tracks/internal/store"
)

// throttleCodes are the error codes DynamoDB answers when it sheds load. The
// SDK retries them a few times itself; past that, the Store keeps retrying
// with its own backoff until the operation's time is up.
var throttleCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"ThrottlingException":                    true,
	"RequestLimitExceeded":                   true,
}

func isThrottle(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && throttleCodes[ae.ErrorCode()]
}

func isConditionFailed(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ConditionalCheckFailedException"
}

// isValidation reports DynamoDB's refusal of a request as invalid, such as
// an item over 400 KB: the request's own fault, which no retry mends.
func isValidation(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationException"
}

// rejected marks DynamoDB's refusal of a result as invalid with
// store.ErrRejected; any other error is returned as it is.
func rejected(err error) error {
	if isValidation(err) {
		return fmt.Errorf("%w: %w", store.ErrRejected, err)
	}
	return err
}

// again marks an error after which the operation is tried again.
type again struct{ err error }

func (a *again) Error() string { return a.err.Error() }
func (a *again) Unwrap() error { return a.err }

// retrying runs f until it succeeds, returns an error that is neither a
// throttle nor marked with again, or the operation's time (ctx, then
// Options.RetryFor) is up. It then returns the last error, with the
// context's when that is what ended it.
func (s *Store) retrying(ctx context.Context, f func(context.Context) error) error {
	b := retry.NewExponential(s.opts.RetryBase)
	b = retry.WithCappedDuration(s.opts.RetryMax, b)
	b = retry.WithJitterPercent(50, b)
	b = retry.WithMaxDuration(s.opts.RetryFor, b)
	var last error
	err := retry.Do(ctx, b, func(ctx context.Context) error {
		err := f(ctx)
		if err == nil {
			return nil
		}
		var a *again
		switch {
		case errors.As(err, &a):
			last = a.err
		case isThrottle(err):
			s.stats.throttled.Add(1)
			last = err
		default:
			return err
		}
		return retry.RetryableError(last)
	})
	if err != nil && ctx.Err() != nil && last != nil && !errors.Is(err, last) {
		return fmt.Errorf("%w (gave up after: %w)", err, last)
	}
	return err
}

package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// CreateTables creates the tracks and artists tables (on-demand capacity) if
// they are missing, and waits until both are active. A table that exists
// with other keys is an error. For tests, `make run` and first-time users;
// production tables belong to infrastructure code.
func (s *Store) CreateTables(ctx context.Context) error {
	specs := []*dynamodb.CreateTableInput{
		tableSpec(s.tracks, attrArtistID, attrID),
		tableSpec(s.artists, attrArtistID, ""),
	}
	for _, spec := range specs {
		if err := s.ensureTable(ctx, spec); err != nil {
			return fmt.Errorf("dynamostore: table %s: %w", *spec.TableName, err)
		}
	}
	waiter := dynamodb.NewTableExistsWaiter(s.client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 200 * time.Millisecond
		o.MaxDelay = 5 * time.Second
	})
	for _, spec := range specs {
		if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: spec.TableName}, 5*time.Minute); err != nil {
			return fmt.Errorf("dynamostore: table %s: waiting until active: %w", *spec.TableName, err)
		}
	}
	return nil
}

func tableSpec(name, hash, rng string) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:   &name,
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: &hash, AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: &hash, KeyType: types.KeyTypeHash}},
	}
	if rng != "" {
		in.AttributeDefinitions = append(in.AttributeDefinitions,
			types.AttributeDefinition{AttributeName: &rng, AttributeType: types.ScalarAttributeTypeS})
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: &rng, KeyType: types.KeyTypeRange})
	}
	return in
}

func (s *Store) ensureTable(ctx context.Context, spec *dynamodb.CreateTableInput) error {
	out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: spec.TableName})
	var notFound *types.ResourceNotFoundException
	switch {
	case err == nil:
		if !slices.EqualFunc(out.Table.KeySchema, spec.KeySchema, sameKey) {
			return fmt.Errorf("exists with key schema %s, want %s", keyString(out.Table.KeySchema), keyString(spec.KeySchema))
		}
		return nil
	case !errors.As(err, &notFound):
		return err
	}
	_, err = s.client.CreateTable(ctx, spec)
	var inUse *types.ResourceInUseException
	if errors.As(err, &inUse) {
		return nil // created meanwhile by someone else
	}
	return err
}

func sameKey(a, b types.KeySchemaElement) bool {
	return a.KeyType == b.KeyType && a.AttributeName != nil && b.AttributeName != nil && *a.AttributeName == *b.AttributeName
}

func keyString(ks []types.KeySchemaElement) string {
	s := ""
	for i, k := range ks {
		if i > 0 {
			s += ", "
		}
		if k.AttributeName != nil {
			s += *k.AttributeName
		}
		s += " " + string(k.KeyType)
	}
	return s
}

// ErrTableMissing and ErrTableKeys are what Check finds wrong with a table.
var (
	ErrTableMissing = errors.New("the table does not exist")
	ErrTableKeys    = errors.New("the table's keys are not the contract's")
)

// Check asks both tables one cheap question each, with the calls the
// worker makes anyway (so the task role needs no DescribeTable): a GetItem
// of the artists table by artist_id, and a Query of the tracks table on
// artist_id and id. A missing table is ErrTableMissing, a table with other
// keys ErrTableKeys (DynamoDB refuses a key that is not the schema's); any
// other error (no network, no credentials, access denied) comes as it is.
func (s *Store) Check(ctx context.Context) error {
	const probe = "0000000000000000000000" // a valid artist ID no row has
	_, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &s.artists,
		Key:       artistKey(probe),
	})
	if err := tableError(s.artists, "artist_id HASH", err); err != nil {
		return err
	}
	err = s.query(ctx, &dynamodb.QueryInput{
		TableName:                 &s.tracks,
		KeyConditionExpression:    aws.String("#a = :a AND #id = :id"),
		ExpressionAttributeNames:  map[string]string{"#a": attrArtistID, "#id": attrID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":a": str(probe), ":id": str(probe)},
		Limit:                     aws.Int32(1),
	}, func(map[string]types.AttributeValue) error { return nil })
	return tableError(s.tracks, "artist_id HASH, id RANGE", err)
}

func tableError(table, keys string, err error) error {
	var notFound *types.ResourceNotFoundException
	var api smithy.APIError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &notFound):
		return fmt.Errorf("dynamostore: table %s: %w", table, ErrTableMissing)
	case errors.As(err, &api) && api.ErrorCode() == "ValidationException":
		return fmt.Errorf("dynamostore: table %s: %w (want %s): %s", table, ErrTableKeys, keys, api.ErrorMessage())
	}
	return fmt.Errorf("dynamostore: table %s: %w", table, err)
}

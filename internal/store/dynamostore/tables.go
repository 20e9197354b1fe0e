package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
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

// Package deploy holds no code: its tests check the deployment files against
// the code they deploy.
//
// They parse deploy/template.yaml (CloudFormation, short-form intrinsics
// such as !Ref and !Sub included), deploy/iam-policy.json, the EventBridge
// Scheduler snippet in deploy/README.md and the Dockerfile, and compare them
// with what the code reads and calls: the worker's configuration (through
// workercmd.Load itself), its stop deadlines, and the SQS and DynamoDB
// operations the backends call, derived from their source with go/parser.
// They also parse deploy/otel-collector.yaml, the collector's configuration
// the template carries, and check the dashboard's and the alarms' metrics
// against it and against internal/metrics.
// Run them with `go test ./internal/deploy/`; `make lint` does.
package deploy

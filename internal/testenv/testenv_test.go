package testenv

import (
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

func TestMain(m *testing.M) { Main(m) }

func TestEmulatorsAnswer(t *testing.T) {
	ctx := Context(t)
	out, err := SQSClient(t).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("smoke")})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	if aws.ToString(out.QueueUrl) == "" {
		t.Fatal("CreateQueue returned no URL")
	}
	if _, err := DynamoDBClient(t).ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("ListTables: %v", err)
	}
}

// TestDynamoDBSurvivesAbortedRequest sends half a request and hangs up, as a
// worker killed mid-write does: dynalite alone dies of it, the launcher keeps
// it answering.
func TestDynamoDBSurvivesAbortedRequest(t *testing.T) {
	endpoint, db := DynamoDBEndpoint(t), DynamoDBClient(t)
	for i := range 3 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: dynamodb\r\n"+
			"Content-Type: application/x-amz-json-1.0\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n"+
			"Content-Length: 1000\r\n\r\n{\"Limit\":")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the server has read the head and part of the body
		conn.Close()
		time.Sleep(100 * time.Millisecond) // time for an uncaught exception to end the process
		if _, err := db.ListTables(Context(t), &dynamodb.ListTablesInput{}); err != nil {
			t.Fatalf("after aborted request %d: ListTables: %v", i+1, err)
		}
	}
}

// TestDeadEmulatorIsNamed starts a second dynalite, kills it, and checks that
// what testenv says of it names the death and quotes its log.
func TestDeadEmulatorIsNamed(t *testing.T) {
	e := launch("dynamodb-doomed", dynaliteCommand)
	if e.err != nil {
		t.Fatal(e.err)
	}
	if why := e.dead(); why != "" {
		t.Fatalf("a running emulator is reported dead: %s", why)
	}
	// The port accepts connections a moment before the script's listen
	// callback has logged: wait for the line the report should quote.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(e.logPath); strings.Contains(string(b), "dynalite listening on") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the launcher never logged that it listens")
		}
	}
	if err := syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-e.exited
	why := e.dead()
	for _, want := range []string{"dynamodb-doomed", "died", "signal: killed", "dynalite listening on"} {
		if !strings.Contains(why, want) {
			t.Errorf("report %q lacks %q", why, want)
		}
	}
}

"""Ask for an artist's top tracks from a chatbot not written in Go, with boto3.

The same path as producer/asker's Ask in Go, with the same backoff: answer from the store when it
holds a fresh answer, otherwise enqueue the artist on the chatbot's lane (QUEUE_URL) and poll the
artists table until it holds an answer it did not hold when the call looked. See
docs/chatbot.md for what "newer than the request" means and why.

    result = ask("0TnOYISbd1XYRBk9myaseg")  # None: not in time; the artist stays enqueued
"""
import json, time
from datetime import datetime, timedelta, timezone
import boto3

sqs, ddb = boto3.client("sqs"), boto3.client("dynamodb")
QUEUE_URL, TRACKS, ARTISTS = "https://sqs.…/sixpotify-chatbot", "top_tracks", "artists"
FRESH_FOR = timedelta(hours=1)  # the worker's FRESH_FOR

def fetched_at(row):
    return datetime.fromisoformat(row["fetched_at"]["S"].replace("Z", "+00:00"))

def artist_row(artist_id):
    item = ddb.get_item(TableName=ARTISTS, Key={"artist_id": {"S": artist_id}},
                        ConsistentRead=True).get("Item")
    return item if item and "fetched_at" in item else None  # no fetched_at: a first save in progress

def answer(row):
    if row["status"]["S"] == "not_found":
        return {"status": "not_found"}
    args = dict(TableName=TRACKS, KeyConditionExpression="artist_id = :a",
                ExpressionAttributeValues={":a": row["artist_id"]}, ConsistentRead=True)
    items = []
    while True:
        page = ddb.query(**args)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    tracks = sorted(({"rank": int(i["rank"]["N"]), "name": i["name"]["S"],
                      "popularity": int(i["popularity"]["N"])} for i in items), key=lambda t: t["rank"])
    return {"status": "ok", "fetched_at": row["fetched_at"]["S"], "tracks": tracks}

def ask(artist_id, timeout=5.0):
    row = artist_row(artist_id)
    if row and datetime.now(timezone.utc) - fetched_at(row) < FRESH_FOR:
        return answer(row)  # fresh: no message
    before = fetched_at(row) if row else None
    sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps({"artist_id": artist_id}))
    deadline, delay = time.monotonic() + timeout, 0.05
    while time.monotonic() + delay < deadline:
        time.sleep(delay)
        row = artist_row(artist_id)
        if row and (before is None or fetched_at(row) > before):
            return answer(row)
        delay = min(2 * delay, 0.5)
    return None  # not in time: the artist stays enqueued, ask again later

"""Verifies Rollcall's outbound webhooks with the official Standard Webhooks library.

Reads {"secret": "whsec_...", "deliveries": [{"headers": {...}, "body": "..."}]} on stdin; verifies each
delivery as received (one change, or a `change.batch` of several), then a tampered copy of each (one byte of the body changed, and the signature of
another message), which must be refused. Prints {"verified": n, "refused": n} and exits 1 on any surprise.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def refused(webhook, body, headers):
    try:
        webhook.verify(body, headers)
    except WebhookVerificationError:
        return True
    return False


def main():
    given = json.load(sys.stdin)
    webhook = Webhook(given["secret"])
    verified = refused_count = 0
    deliveries = given["deliveries"]
    for i, delivery in enumerate(deliveries):
        headers, body = delivery["headers"], delivery["body"]
        payload = webhook.verify(body, headers)
        changes = payload["data"]["changes"] if payload["type"] == "change.batch" else [payload["data"]]
        if not changes or any(change["position"] < 1 for change in changes):
            sys.exit(f"delivery {i}: no position in {payload}")
        verified += 1
        tampered = body.replace('"position":', '"position": ', 1)
        if not refused(webhook, tampered, headers):
            sys.exit(f"delivery {i}: a changed body was accepted")
        other = deliveries[(i + 1) % len(deliveries)]["headers"]["webhook-signature"]
        if len(deliveries) > 1 and not refused(webhook, body, dict(headers, **{"webhook-signature": other})):
            sys.exit(f"delivery {i}: another message's signature was accepted")
        refused_count += 1
    print(json.dumps({"verified": verified, "refused": refused_count}))


if __name__ == "__main__":
    main()

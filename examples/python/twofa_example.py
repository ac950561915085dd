#!/usr/bin/env python3
"""twofa example in Python, standard library only.

Enrolls a user, confirms the enrollment with a TOTP code computed here,
verifies a code, shows that a replayed and a malformed code are refused,
and prints the user's status. Configure with TWOFA_URL, TWOFA_API_KEY and
optionally TWOFA_USER. Exits non-zero on any unexpected answer.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BASE_URL = os.environ.get("TWOFA_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ.get("TWOFA_API_KEY", "")
USER = os.environ.get("TWOFA_USER", "alice")

PERIOD, DIGITS = 30, 6  # twofa's defaults: HMAC-SHA1, 30 s steps, 6 digits


def fail(msg):
    print("UNEXPECTED: " + msg, file=sys.stderr)
    sys.exit(1)


def call(method, path, body=None):
    """Calls the API and returns (HTTP status, parsed JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE_URL + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + API_KEY)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:  # 4xx and 5xx still carry a JSON body
        status, raw = e.code, e.read()
    return status, (json.loads(raw) if raw.strip() else None)


def totp(secret_b32, t):
    """RFC 6238 TOTP: HMAC-SHA1 of the 30 s step counter, dynamically truncated."""
    s = secret_b32.upper().replace(" ", "").rstrip("=")
    key = base64.b32decode(s + "=" * (-len(s) % 8))
    counter = struct.pack(">Q", int(t) // PERIOD)
    mac = hmac.new(key, counter, hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def main():
    if not API_KEY:
        fail("set TWOFA_API_KEY (create one with: twofa apikey create --name demo)")
    user_path = "/v1/users/" + urllib.parse.quote(USER, safe="")
    print(f"twofa at {BASE_URL}, user {USER!r}")

    # 1. Enroll: twofa makes the secret, the otpauth URI and a QR code.
    status, en = call("POST", user_path + "/totp", {"name": "Example phone"})
    if status != 201:
        fail(f"enroll: HTTP {status} {en}")
    secret = en["secret"]
    # Never print or log the secret: anyone who has it can make codes.
    uri = re.sub(r"secret=[^&]*", "secret=REDACTED", en["otpauth_uri"])
    print(f"1. enrolled device {en['device_id']}: {uri}")
    print(f"   (a real app shows qr_png, a {len(en['qr_png'])}-char base64 PNG, for the user to scan)")

    # 2. Confirm with the code of the PREVIOUS step (now - 30 s). twofa
    # accepts each code only once (a step must be newer than the last one
    # accepted), so confirming with the current code would leave nothing for
    # step 3; the server's window of one step either side still takes it.
    # Near the end of a step, wait for the next so the window still fits.
    if PERIOD - time.time() % PERIOD < 2:
        time.sleep(PERIOD - time.time() % PERIOD + 0.1)
    device_path = user_path + "/totp/" + urllib.parse.quote(en["device_id"], safe="")
    status, conf = call("POST", device_path + "/confirm",
                        {"code": totp(secret, time.time() - PERIOD)})
    if status != 200 or not conf.get("valid"):
        fail(f"confirm: HTTP {status} {conf}")
    print(f"2. confirmed with the previous step's code: {len(conf.get('backup_codes', []))} backup codes received")

    # 3. Verify the current step's code, as an authenticator app shows it.
    code = totp(secret, time.time())
    status, ver = call("POST", user_path + "/verify", {"code": code})
    if status != 200 or not ver.get("valid"):
        fail(f"verify: HTTP {status} {ver}")
    print(f"3. verify current code: valid (factor {ver['factor']})")

    # 4. The same code again is refused: a code is good only once.
    status, ver = call("POST", user_path + "/verify", {"code": code})
    if status != 200 or ver.get("valid") or ver.get("reason") != "replayed":
        fail(f"replay: HTTP {status} {ver}")
    print(f"4. verify same code again: refused, reason {ver['reason']!r}")

    # 5. A code of the wrong form is a client error, with an error body.
    status, err = call("POST", user_path + "/verify", {"code": "12345"})
    if status != 400 or "error" not in err:
        fail(f"malformed: HTTP {status} {err}")
    print(f"5. verify malformed '12345': HTTP {status} {json.dumps(err)}")

    # 6. The user's status: devices (never secrets) and backup codes left.
    status, u = call("GET", user_path)
    if status != 200 or not u.get("enrolled"):
        fail(f"user: HTTP {status} {u}")
    print(f"6. GET {user_path}: {json.dumps(u)}")
    print("OK")


if __name__ == "__main__":
    main()

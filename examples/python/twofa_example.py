#!/usr/bin/env python3
"""twofa example in Python, standard library only.

Enrolls a user, confirms the enrollment with a TOTP code computed here,
verifies a code, shows that a replayed and a malformed code are refused,
and prints the user's status. Then adds an email address and signs in with
a code sent to it: confirm the address, start a challenge, resend once
resend_after has passed, see a wrong code refused, verify the right one.
Configure with TWOFA_URL, TWOFA_API_KEY and optionally TWOFA_USER and
TWOFA_EXAMPLE_EMAIL. The user reads emailed codes from their mail; here,
when TWOFA_EXAMPLE_MAILPIT is Mailpit's URL, they are read from Mailpit's
API, else the email part stops once the first code is sent. Exits non-zero
on any unexpected answer.
"""

import base64
import calendar
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
EMAIL = os.environ.get("TWOFA_EXAMPLE_EMAIL") or re.sub(r"[^A-Za-z0-9._-]+", "-", USER) + "@example.com"
MAILPIT = os.environ.get("TWOFA_EXAMPLE_MAILPIT", "").rstrip("/")

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


def unix_time(rfc3339):
    """Seconds since the epoch of a UTC time as the API writes it."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", rfc3339)
    if not m:
        fail(f"not a UTC time: {rfc3339!r}")
    return calendar.timegm(time.strptime(m[1], "%Y-%m-%dT%H:%M:%S")) + float(m[2] or 0)


def mailpit_get(path):
    with urllib.request.urlopen(MAILPIT + path, timeout=10) as resp:
        return json.loads(resp.read())


def emailed_code(seen):
    """The code in the newest email to EMAIL not in seen, read through
    Mailpit's API as the user would read their mail; waits up to a minute."""
    query = urllib.parse.quote("to:" + EMAIL)
    deadline = time.time() + 60
    while time.time() < deadline:
        for m in mailpit_get("/api/v1/search?query=" + query)["messages"]:  # newest first
            if m["ID"] in seen:
                continue
            seen.add(m["ID"])
            code = re.search(r"(?m)^\s*(\d{8})\s*$", mailpit_get("/api/v1/message/" + m["ID"])["Text"])
            if code:  # not a notice
                return code[1]
        time.sleep(0.2)
    fail(f"no new code in Mailpit for {EMAIL} within a minute")


def email_part(user_path):
    # 7. Add an email address: a pending device, and a code sent to it.
    status, en = call("POST", user_path + "/email", {"address": EMAIL})
    if status == 409 and en["error"].get("reason") == "factor_unavailable":
        print(f"7. POST {user_path}/email: HTTP 409 factor_unavailable: {en['error']['message']}")
        return
    if status != 201:
        fail(f"add email: HTTP {status} {en}")
    device, ch = en["device"], en["challenge"]
    print(f"7. POST {user_path}/email: {device['address']} added as device {device['id']} ({device['status']}); "
          f"a code was sent (challenge {ch['challenge_id']}, resend after {ch['resend_after']})")
    if not MAILPIT:
        print("   The user types the code from the email. Set TWOFA_EXAMPLE_MAILPIT to read it from Mailpit and go on.")
        return
    seen = set()

    # 8. Confirm the address with the code the user read. (Never log codes.)
    code = emailed_code(seen)
    status, res = call("POST", user_path + "/email/" + urllib.parse.quote(device["id"], safe="") + "/confirm",
                       {"challenge_id": ch["challenge_id"], "code": code})
    if status != 200 or not res.get("valid"):
        fail(f"confirm email: HTTP {status} {res}")
    print(f"8. confirm the address with the code from the email: valid (factor {res['factor']})")

    # 9. Sign in by email: a challenge sends a code.
    status, ch = call("POST", user_path + "/challenges", {"factor": "email"})
    if status != 201:
        fail(f"challenge: HTTP {status} {ch}")
    challenge_path = user_path + "/challenges/" + urllib.parse.quote(ch["challenge_id"], safe="")
    print(f"9. POST {user_path}/challenges: challenge {ch['challenge_id']} ({ch['purpose']}), "
          f"{ch['code_digits']}-digit code sent, resend after {ch['resend_after']}")
    emailed_code(seen)  # the user has it, and asks for another anyway

    # 10. Another code, once resend_after has passed (earlier, HTTP 429).
    # The earlier codes stay valid.
    waited = max(0.0, unix_time(ch["resend_after"]) - time.time())
    time.sleep(waited)
    for _ in range(3):
        status, again = call("POST", challenge_path + "/resend")
        if status != 429:
            break
        time.sleep(max(0.0, unix_time(again["error"]["until"]) - time.time()) + 0.1)  # our clock was early
    if status != 200:
        fail(f"resend: HTTP {status} {again}")
    print(f"10. resend after waiting {waited:.0f} s for resend_after: another code sent, next resend after {again['resend_after']}")

    # 11. A wrong code is refused, and counts against the user as a TOTP code would.
    code = emailed_code(seen)
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    status, res = call("POST", challenge_path + "/verify", {"code": wrong})
    if status != 200 or res.get("valid") or res.get("reason") != "invalid_code":
        fail(f"wrong code: HTTP {status} {res}")
    status, state = call("GET", challenge_path)
    if status != 200:
        fail(f"challenge state: HTTP {status} {state}")
    print(f"11. verify a wrong code: refused, reason {res['reason']!r}; challenge {state['state']}, "
          f"{state['attempts_left']} attempts left")

    # 12. The newest code signs the user in.
    status, res = call("POST", challenge_path + "/verify", {"code": code})
    if status != 200 or not res.get("valid"):
        fail(f"verify email code: HTTP {status} {res}")
    print(f"12. verify the code from the newest email: valid (factor {res['factor']})")


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

    email_part(user_path)
    print("OK")


if __name__ == "__main__":
    main()

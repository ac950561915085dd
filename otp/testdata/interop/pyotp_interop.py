"""pyotp side of otp/interop_test.go.

Reads one JSON request on stdin and writes one JSON array on stdout, one
entry per case, in order:

  {"mode": "totp", "cases": [{"secret": B32, "alg": "SHA256", "digits": 8,
                              "period": 30, "time": UNIX}]}       -> ["code", ...]
  {"mode": "hotp", "cases": [{"secret": B32, "alg": "SHA1", "digits": 6,
                              "counter": N}]}                     -> ["code", ...]
  {"mode": "uri", "uris": ["otpauth://...", ...]}
      -> [{"type", "secret", "secret_hex", "issuer", "name", "digits",
           "algorithm", "period", "counter"} or {"error": "..."}, ...]

pyotp has no T0 (start time): the Go test sends no case with one.
A case that raises gives {"error": "..."} in its place, so one bad case
cannot hide the others.
"""
import datetime
import hashlib
import json
import sys

import pyotp

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def totp(c):
    o = pyotp.TOTP(c["secret"], digits=c["digits"], digest=DIGESTS[c["alg"]], interval=c["period"])
    # A timezone-aware datetime: pyotp then uses calendar.timegm, not the
    # local-time round trip of time.mktime that a bare int goes through.
    return o.at(datetime.datetime.fromtimestamp(c["time"], tz=datetime.timezone.utc))


def hotp(c):
    return pyotp.HOTP(c["secret"], digits=c["digits"], digest=DIGESTS[c["alg"]]).at(c["counter"])


def uri(u):
    o = pyotp.parse_uri(u)
    r = {
        "secret": o.secret,
        "secret_hex": o.byte_secret().hex(),
        "issuer": o.issuer,
        "name": o.name,
        "digits": o.digits,
        "algorithm": o.digest().name,
    }
    if isinstance(o, pyotp.TOTP):
        r["type"], r["period"] = "totp", o.interval
    elif isinstance(o, pyotp.HOTP):
        r["type"], r["counter"] = "hotp", o.initial_count
    return r


def guard(f, x):
    try:
        return f(x)
    except Exception as e:  # reported per case by the Go test
        return {"error": "%s: %s" % (type(e).__name__, e)}


def main():
    req = json.load(sys.stdin)
    mode = req["mode"]
    if mode == "uri":
        out = [guard(uri, u) for u in req["uris"]]
    else:
        f = {"totp": totp, "hotp": hotp}[mode]
        out = [guard(f, c) for c in req["cases"]]
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()

// otplib side of otp/interop_test.go, with the versions pinned in
// package.json (installed by scripts/install-test-deps.sh).
//
// Reads one JSON request on stdin and writes one JSON array on stdout, one
// entry per case, in order (the same protocol as ../pyotp_interop.py):
//
//   {"mode": "totp", "cases": [{"secret": B32, "alg": "SHA256", "digits": 8,
//                               "period": 30, "t0": UNIX (optional),
//                               "time": UNIX}]}                  -> ["code", ...]
//   {"mode": "hotp", "cases": [{"secret": B32, "alg": "SHA1", "digits": 6,
//                               "counter": N}]}                  -> ["code", ...]
//   {"mode": "uri", "uris": ["otpauth://...", ...]}
//       -> [{"type", "label", "params": {...}} or {"error": "..."}, ...]
//
// A case that throws gives {"error": "..."} in its place.
import { generateSync } from "otplib";
import { parse } from "@otplib/uri";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));

function guard(f, x) {
  try {
    return f(x);
  } catch (e) {
    return { error: `${e.name}: ${e.message}` };
  }
}

const alg = (c) => c.alg.toLowerCase(); // otplib names: sha1, sha256, sha512

const modes = {
  totp: (c) =>
    generateSync({
      strategy: "totp",
      secret: c.secret,
      algorithm: alg(c),
      digits: c.digits,
      period: c.period,
      epoch: c.time,
      t0: c.t0 ?? 0,
    }),
  hotp: (c) =>
    generateSync({
      strategy: "hotp",
      secret: c.secret,
      algorithm: alg(c),
      digits: c.digits,
      counter: c.counter,
    }),
  uri: (u) => {
    const p = parse(u);
    return { type: p.type, label: p.label, params: p.params };
  },
};

const f = modes[req.mode];
if (!f) throw new Error(`unknown mode ${req.mode}`);
const out = (req.mode === "uri" ? req.uris : req.cases).map((x) => guard(f, x));
process.stdout.write(JSON.stringify(out));

// twofa example in JavaScript for Node 20+, standard library only
// (node:crypto and the global fetch).
//
// Enrolls a user, confirms the enrollment with a TOTP code computed here,
// verifies a code, shows that a replayed and a malformed code are refused,
// and prints the user's status. Then adds an email address and signs in
// with a code sent to it: confirm the address, start a challenge, resend
// once resend_after has passed, see a wrong code refused, verify the right
// one. Configure with TWOFA_URL, TWOFA_API_KEY and optionally TWOFA_USER
// and TWOFA_EXAMPLE_EMAIL. The user reads emailed codes from their mail;
// here, when TWOFA_EXAMPLE_MAILPIT is Mailpit's URL, they are read from
// Mailpit's API, else the email part stops once the first code is sent.
// Exits non-zero on any unexpected answer.
//
//   node twofa_example.mjs

import { createHmac } from "node:crypto";

const BASE_URL = (process.env.TWOFA_URL || "http://127.0.0.1:8080").replace(/\/+$/, "");
const API_KEY = process.env.TWOFA_API_KEY || "";
const USER = process.env.TWOFA_USER || "alice";
const EMAIL = process.env.TWOFA_EXAMPLE_EMAIL || USER.replace(/[^A-Za-z0-9._-]+/g, "-") + "@example.com";
const MAILPIT = (process.env.TWOFA_EXAMPLE_MAILPIT || "").replace(/\/+$/, "");

const PERIOD = 30, DIGITS = 6; // twofa's defaults: HMAC-SHA1, 30 s steps, 6 digits

function fail(msg) {
  console.error("UNEXPECTED: " + msg);
  process.exit(1);
}

// call returns { status, body } with the body parsed as JSON (or null).
async function call(method, path, body) {
  const headers = { Authorization: "Bearer " + API_KEY };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(BASE_URL + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await resp.text();
  return { status: resp.status, body: text.trim() ? JSON.parse(text) : null };
}

// base32Decode decodes RFC 4648 base32, ignoring case, spaces and padding.
function base32Decode(s) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const out = [];
  let bits = 0, value = 0;
  for (const ch of s.toUpperCase().replace(/[\s=]/g, "")) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error("secret is not base32");
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

// totp is RFC 6238: HMAC-SHA1 of the 30 s step counter, dynamically truncated.
function totp(secretB32, unixSeconds) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / PERIOD)));
  const mac = createHmac("sha1", base32Decode(secretB32)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const number = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(number % 10 ** DIGITS).padStart(DIGITS, "0");
}

// mailpitGet reads Mailpit's API.
async function mailpitGet(path) {
  const resp = await fetch(MAILPIT + path, { signal: AbortSignal.timeout(10_000) });
  if (!resp.ok) fail(`Mailpit ${path}: HTTP ${resp.status}`);
  return resp.json();
}

// emailedCode returns the code in the newest email to EMAIL not in seen,
// read through Mailpit's API as the user would read their mail; it waits
// up to a minute.
async function emailedCode(seen) {
  const query = encodeURIComponent("to:" + EMAIL);
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(200)) {
    for (const m of (await mailpitGet("/api/v1/search?query=" + query)).messages) { // newest first
      if (seen.has(m.ID)) continue;
      seen.add(m.ID);
      const code = /^\s*(\d{8})\s*$/m.exec((await mailpitGet("/api/v1/message/" + m.ID)).Text);
      if (code) return code[1]; // not a notice
    }
  }
  fail(`no new code in Mailpit for ${EMAIL} within a minute`);
}

const now = () => Date.now() / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (!API_KEY) fail("set TWOFA_API_KEY (create one with: twofa apikey create --name demo)");
const userPath = "/v1/users/" + encodeURIComponent(USER);
console.log(`twofa at ${BASE_URL}, user '${USER}'`);

// 1. Enroll: twofa makes the secret, the otpauth URI and a QR code.
let r = await call("POST", userPath + "/totp", { name: "Example phone" });
if (r.status !== 201) fail(`enroll: HTTP ${r.status} ${JSON.stringify(r.body)}`);
const en = r.body;
const secret = en.secret;
// Never print or log the secret: anyone who has it can make codes.
const uri = en.otpauth_uri.replace(/secret=[^&]*/, "secret=REDACTED");
console.log(`1. enrolled device ${en.device_id}: ${uri}`);
console.log(`   (a real app shows qr_png, a ${en.qr_png.length}-char base64 PNG, for the user to scan)`);

// 2. Confirm with the code of the PREVIOUS step (now - 30 s). twofa accepts
// each code only once (a step must be newer than the last one accepted), so
// confirming with the current code would leave nothing for step 3; the
// server's window of one step either side still takes it. Near the end of a
// step, wait for the next so the window still fits.
if (PERIOD - (now() % PERIOD) < 2) await sleep((PERIOD - (now() % PERIOD)) * 1000 + 100);
r = await call("POST", `${userPath}/totp/${encodeURIComponent(en.device_id)}/confirm`, {
  code: totp(secret, now() - PERIOD),
});
if (r.status !== 200 || !r.body.valid) fail(`confirm: HTTP ${r.status} ${JSON.stringify(r.body)}`);
console.log(`2. confirmed with the previous step's code: ${(r.body.backup_codes || []).length} backup codes received`);

// 3. Verify the current step's code, as an authenticator app shows it.
const code = totp(secret, now());
r = await call("POST", userPath + "/verify", { code });
if (r.status !== 200 || !r.body.valid) fail(`verify: HTTP ${r.status} ${JSON.stringify(r.body)}`);
console.log(`3. verify current code: valid (factor ${r.body.factor})`);

// 4. The same code again is refused: a code is good only once.
r = await call("POST", userPath + "/verify", { code });
if (r.status !== 200 || r.body.valid || r.body.reason !== "replayed") {
  fail(`replay: HTTP ${r.status} ${JSON.stringify(r.body)}`);
}
console.log(`4. verify same code again: refused, reason '${r.body.reason}'`);

// 5. A code of the wrong form is a client error, with an error body.
r = await call("POST", userPath + "/verify", { code: "12345" });
if (r.status !== 400 || !r.body?.error) fail(`malformed: HTTP ${r.status} ${JSON.stringify(r.body)}`);
console.log(`5. verify malformed '12345': HTTP ${r.status} ${JSON.stringify(r.body)}`);

// 6. The user's status: devices (never secrets) and backup codes left.
r = await call("GET", userPath);
if (r.status !== 200 || !r.body.enrolled) fail(`user: HTTP ${r.status} ${JSON.stringify(r.body)}`);
console.log(`6. GET ${userPath}: ${JSON.stringify(r.body)}`);

await emailPart();
console.log("OK");

async function emailPart() {
  // 7. Add an email address: a pending device, and a code sent to it.
  let r = await call("POST", userPath + "/email", { address: EMAIL });
  if (r.status === 409 && r.body.error.reason === "factor_unavailable") {
    console.log(`7. POST ${userPath}/email: HTTP 409 factor_unavailable: ${r.body.error.message}`);
    return;
  }
  if (r.status !== 201) fail(`add email: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  const { device, challenge } = r.body;
  console.log(`7. POST ${userPath}/email: ${device.address} added as device ${device.id} (${device.status}); ` +
    `a code was sent (challenge ${challenge.challenge_id}, resend after ${challenge.resend_after})`);
  if (!MAILPIT) {
    console.log("   The user types the code from the email. Set TWOFA_EXAMPLE_MAILPIT to read it from Mailpit and go on.");
    return;
  }
  const seen = new Set();

  // 8. Confirm the address with the code the user read. (Never log codes.)
  let code = await emailedCode(seen);
  r = await call("POST", `${userPath}/email/${encodeURIComponent(device.id)}/confirm`,
    { challenge_id: challenge.challenge_id, code });
  if (r.status !== 200 || !r.body.valid) fail(`confirm email: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  console.log(`8. confirm the address with the code from the email: valid (factor ${r.body.factor})`);

  // 9. Sign in by email: a challenge sends a code.
  r = await call("POST", userPath + "/challenges", { factor: "email" });
  if (r.status !== 201) fail(`challenge: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  const ch = r.body;
  const challengePath = `${userPath}/challenges/${encodeURIComponent(ch.challenge_id)}`;
  console.log(`9. POST ${userPath}/challenges: challenge ${ch.challenge_id} (${ch.purpose}), ` +
    `${ch.code_digits}-digit code sent, resend after ${ch.resend_after}`);
  await emailedCode(seen); // the user has it, and asks for another anyway

  // 10. Another code, once resend_after has passed (earlier, HTTP 429).
  // The earlier codes stay valid.
  const waited = Math.max(0, Date.parse(ch.resend_after) - Date.now());
  await sleep(waited);
  for (let i = 0; i < 3; i++) {
    r = await call("POST", challengePath + "/resend");
    if (r.status !== 429) break;
    await sleep(Math.max(0, Date.parse(r.body.error.until) - Date.now()) + 100); // our clock was early
  }
  if (r.status !== 200) fail(`resend: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  console.log(`10. resend after waiting ${Math.round(waited / 1000)} s for resend_after: another code sent, ` +
    `next resend after ${r.body.resend_after}`);

  // 11. A wrong code is refused, and counts against the user as a TOTP code would.
  code = await emailedCode(seen);
  const wrong = String((Number(code) + 1) % 1e8).padStart(8, "0");
  r = await call("POST", challengePath + "/verify", { code: wrong });
  if (r.status !== 200 || r.body.valid || r.body.reason !== "invalid_code") {
    fail(`wrong code: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  }
  const reason = r.body.reason;
  r = await call("GET", challengePath);
  if (r.status !== 200) fail(`challenge state: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  console.log(`11. verify a wrong code: refused, reason '${reason}'; challenge ${r.body.state}, ` +
    `${r.body.attempts_left} attempts left`);

  // 12. The newest code signs the user in.
  r = await call("POST", challengePath + "/verify", { code });
  if (r.status !== 200 || !r.body.valid) fail(`verify email code: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  console.log(`12. verify the code from the newest email: valid (factor ${r.body.factor})`);
}

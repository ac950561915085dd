// twofa example in Java 17, standard library only (java.net.http and javax.crypto).
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
//   java TwofaExample.java

import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class TwofaExample {
    static final String BASE_URL = env("TWOFA_URL", "http://127.0.0.1:8080").replaceAll("/+$", "");
    static final String API_KEY = env("TWOFA_API_KEY", "");
    static final String USER = env("TWOFA_USER", "alice");
    static final String EMAIL = env("TWOFA_EXAMPLE_EMAIL", USER.replaceAll("[^A-Za-z0-9._-]+", "-") + "@example.com");
    static final String MAILPIT = env("TWOFA_EXAMPLE_MAILPIT", "").replaceAll("/+$", "");
    static final int PERIOD = 30, DIGITS = 6; // twofa's defaults: HMAC-SHA1, 30 s steps, 6 digits

    static final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    public static void main(String[] args) throws Exception {
        if (API_KEY.isEmpty()) fail("set TWOFA_API_KEY (create one with: twofa apikey create --name demo)");
        String userPath = "/v1/users/" + pathEscape(USER);
        System.out.println("twofa at " + BASE_URL + ", user '" + USER + "'");

        // 1. Enroll: twofa makes the secret, the otpauth URI and a QR code.
        Response r = call("POST", userPath + "/totp", "{\"name\": \"Example phone\"}");
        if (r.status != 201) fail("enroll: " + r);
        String deviceId = r.str("device_id");
        String secret = r.str("secret");
        // Never print or log the secret: anyone who has it can make codes.
        String uri = r.str("otpauth_uri").replaceAll("secret=[^&]*", "secret=REDACTED");
        System.out.println("1. enrolled device " + deviceId + ": " + uri);
        System.out.println("   (a real app shows qr_png, a " + r.str("qr_png").length()
                + "-char base64 PNG, for the user to scan)");

        // 2. Confirm with the code of the PREVIOUS step (now - 30 s). twofa
        // accepts each code only once (a step must be newer than the last one
        // accepted), so confirming with the current code would leave nothing
        // for step 3; the server's window of one step either side still takes
        // it. Near the end of a step, wait for the next so the window still fits.
        long msLeft = PERIOD * 1000L - System.currentTimeMillis() % (PERIOD * 1000L);
        if (msLeft < 2000) Thread.sleep(msLeft + 100);
        String previous = totp(secret, System.currentTimeMillis() / 1000 - PERIOD);
        r = call("POST", userPath + "/totp/" + pathEscape(deviceId) + "/confirm", codeBody(previous));
        if (r.status != 200 || !Boolean.TRUE.equals(r.get("valid"))) fail("confirm: " + r);
        Object backup = r.get("backup_codes");
        int n = backup instanceof List<?> l ? l.size() : 0;
        System.out.println("2. confirmed with the previous step's code: " + n + " backup codes received");

        // 3. Verify the current step's code, as an authenticator app shows it.
        String code = totp(secret, System.currentTimeMillis() / 1000);
        r = call("POST", userPath + "/verify", codeBody(code));
        if (r.status != 200 || !Boolean.TRUE.equals(r.get("valid"))) fail("verify: " + r);
        System.out.println("3. verify current code: valid (factor " + r.str("factor") + ")");

        // 4. The same code again is refused: a code is good only once.
        r = call("POST", userPath + "/verify", codeBody(code));
        if (r.status != 200 || !Boolean.FALSE.equals(r.get("valid")) || !"replayed".equals(r.get("reason"))) {
            fail("replay: " + r);
        }
        System.out.println("4. verify same code again: refused, reason '" + r.str("reason") + "'");

        // 5. A code of the wrong form is a client error, with an error body.
        r = call("POST", userPath + "/verify", codeBody("12345"));
        if (r.status != 400 || !(r.get("error") instanceof Map)) fail("malformed: " + r);
        System.out.println("5. verify malformed '12345': HTTP " + r.status + " " + r.raw.strip());

        // 6. The user's status: devices (never secrets) and backup codes left.
        r = call("GET", userPath, null);
        if (r.status != 200 || !Boolean.TRUE.equals(r.get("enrolled"))) fail("user: " + r);
        System.out.println("6. GET " + userPath + ": " + r.raw.strip());

        emailPart(userPath);
        System.out.println("OK");
    }

    static void emailPart(String userPath) throws Exception {
        // 7. Add an email address: a pending device, and a code sent to it.
        Response r = call("POST", userPath + "/email", "{\"address\": " + jsonString(EMAIL) + "}");
        if (r.status == 409 && r.get("error") instanceof Map<?, ?> e && "factor_unavailable".equals(e.get("reason"))) {
            System.out.println("7. POST " + userPath + "/email: HTTP 409 factor_unavailable: " + e.get("message"));
            return;
        }
        if (r.status != 201) fail("add email: " + r);
        Map<?, ?> device = (Map<?, ?>) r.get("device"), challenge = (Map<?, ?>) r.get("challenge");
        String deviceId = (String) device.get("id"), challengeId = (String) challenge.get("challenge_id");
        System.out.println("7. POST " + userPath + "/email: " + device.get("address") + " added as device " + deviceId
                + " (" + device.get("status") + "); a code was sent (challenge " + challengeId
                + ", resend after " + challenge.get("resend_after") + ")");
        if (MAILPIT.isEmpty()) {
            System.out.println("   The user types the code from the email. Set TWOFA_EXAMPLE_MAILPIT to read it from Mailpit and go on.");
            return;
        }
        Set<String> seen = new HashSet<>();

        // 8. Confirm the address with the code the user read. (Never log codes.)
        String code = emailedCode(seen);
        r = call("POST", userPath + "/email/" + pathEscape(deviceId) + "/confirm",
                "{\"challenge_id\": \"" + challengeId + "\", \"code\": \"" + code + "\"}");
        if (r.status != 200 || !Boolean.TRUE.equals(r.get("valid"))) fail("confirm email: " + r);
        System.out.println("8. confirm the address with the code from the email: valid (factor " + r.str("factor") + ")");

        // 9. Sign in by email: a challenge sends a code.
        r = call("POST", userPath + "/challenges", "{\"factor\": \"email\"}");
        if (r.status != 201) fail("challenge: " + r);
        String id = r.str("challenge_id"), resendAfter = r.str("resend_after");
        String challengePath = userPath + "/challenges/" + pathEscape(id);
        System.out.println("9. POST " + userPath + "/challenges: challenge " + id + " (" + r.str("purpose") + "), "
                + ((Double) r.get("code_digits")).intValue() + "-digit code sent, resend after " + resendAfter);
        emailedCode(seen); // the user has it, and asks for another anyway

        // 10. Another code, once resend_after has passed (earlier, HTTP 429).
        // The earlier codes stay valid.
        long waited = Math.max(0, Instant.parse(resendAfter).toEpochMilli() - System.currentTimeMillis());
        Thread.sleep(waited);
        for (int i = 0; i < 3; i++) {
            r = call("POST", challengePath + "/resend", null);
            if (r.status != 429) break;
            String until = (String) ((Map<?, ?>) r.get("error")).get("until");
            Thread.sleep(Math.max(0, Instant.parse(until).toEpochMilli() - System.currentTimeMillis()) + 100); // our clock was early
        }
        if (r.status != 200) fail("resend: " + r);
        System.out.println("10. resend after waiting " + Math.round(waited / 1000.0) + " s for resend_after: another code sent, next resend after "
                + r.str("resend_after"));

        // 11. A wrong code is refused, and counts against the user as a TOTP code would.
        code = emailedCode(seen);
        String wrong = String.format("%08d", (Integer.parseInt(code) + 1) % 100_000_000);
        r = call("POST", challengePath + "/verify", codeBody(wrong));
        if (r.status != 200 || !Boolean.FALSE.equals(r.get("valid")) || !"invalid_code".equals(r.get("reason"))) {
            fail("wrong code: " + r);
        }
        String reason = r.str("reason");
        r = call("GET", challengePath, null);
        if (r.status != 200) fail("challenge state: " + r);
        System.out.println("11. verify a wrong code: refused, reason '" + reason + "'; challenge " + r.str("state") + ", "
                + ((Double) r.get("attempts_left")).intValue() + " attempts left");

        // 12. The newest code signs the user in.
        r = call("POST", challengePath + "/verify", codeBody(code));
        if (r.status != 200 || !Boolean.TRUE.equals(r.get("valid"))) fail("verify email code: " + r);
        System.out.println("12. verify the code from the newest email: valid (factor " + r.str("factor") + ")");
    }

    static final Pattern CODE_LINE = Pattern.compile("(?m)^\\s*(\\d{8})\\s*$");

    /**
     * emailedCode returns the code in the newest email to EMAIL not in seen,
     * read through Mailpit's API as the user would read their mail; it
     * waits up to a minute.
     */
    static String emailedCode(Set<String> seen) throws Exception {
        String query = URLEncoder.encode("to:" + EMAIL, StandardCharsets.UTF_8);
        for (long deadline = System.currentTimeMillis() + 60_000; System.currentTimeMillis() < deadline; Thread.sleep(200)) {
            Map<?, ?> found = (Map<?, ?>) mailpitGet("/api/v1/search?query=" + query);
            for (Object o : (List<?>) found.get("messages")) { // newest first
                String id = (String) ((Map<?, ?>) o).get("ID");
                if (!seen.add(id)) continue;
                Matcher m = CODE_LINE.matcher((String) ((Map<?, ?>) mailpitGet("/api/v1/message/" + id)).get("Text"));
                if (m.find()) return m.group(1); // not a notice
            }
        }
        fail("no new code in Mailpit for " + EMAIL + " within a minute");
        return null;
    }

    static Object mailpitGet(String path) throws Exception {
        var req = HttpRequest.newBuilder(URI.create(MAILPIT + path)).timeout(Duration.ofSeconds(10)).GET().build();
        HttpResponse<String> resp = http.send(req, HttpResponse.BodyHandlers.ofString());
        if (resp.statusCode() != 200) fail("Mailpit " + path + ": HTTP " + resp.statusCode());
        return new Json(resp.body()).parse();
    }

    /** totp is RFC 6238: HMAC-SHA1 of the 30 s step counter, dynamically truncated. */
    static String totp(String secretBase32, long unixSeconds) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA1");
        mac.init(new SecretKeySpec(base32Decode(secretBase32), "HmacSHA1"));
        byte[] h = mac.doFinal(ByteBuffer.allocate(8).putLong(unixSeconds / PERIOD).array());
        int offset = h[h.length - 1] & 0x0f;
        int number = ByteBuffer.wrap(h, offset, 4).getInt() & 0x7fffffff;
        return String.format("%0" + DIGITS + "d", number % (int) Math.pow(10, DIGITS));
    }

    /** base32Decode decodes RFC 4648 base32, ignoring case, spaces and padding. */
    static byte[] base32Decode(String s) {
        String alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        var out = new java.io.ByteArrayOutputStream();
        int bits = 0, value = 0;
        for (char c : s.toUpperCase().replaceAll("[\\s=]", "").toCharArray()) {
            int i = alphabet.indexOf(c);
            if (i < 0) throw new IllegalArgumentException("secret is not base32");
            value = (value << 5) | i;
            bits += 5;
            if (bits >= 8) {
                bits -= 8;
                out.write((value >>> bits) & 0xff);
            }
        }
        return out.toByteArray();
    }

    record Response(int status, String raw, Object json) {
        Object get(String field) {
            return json instanceof Map<?, ?> m ? m.get(field) : null;
        }

        String str(String field) {
            if (get(field) instanceof String s) return s;
            fail("no string field " + field + " in " + this);
            return null;
        }

        @Override
        public String toString() {
            return "HTTP " + status + " " + raw.strip();
        }
    }

    static Response call(String method, String path, String jsonBody) throws Exception {
        var req = HttpRequest.newBuilder(URI.create(BASE_URL + path))
                .timeout(Duration.ofSeconds(10))
                .header("Authorization", "Bearer " + API_KEY);
        if (jsonBody == null) {
            req.method(method, HttpRequest.BodyPublishers.noBody());
        } else {
            req.header("Content-Type", "application/json");
            req.method(method, HttpRequest.BodyPublishers.ofString(jsonBody));
        }
        HttpResponse<String> resp = http.send(req.build(), HttpResponse.BodyHandlers.ofString());
        String raw = resp.body();
        return new Response(resp.statusCode(), raw, raw.isBlank() ? null : new Json(raw).parse());
    }

    static String codeBody(String code) {
        return "{\"code\": \"" + code + "\"}"; // codes are digits or [a-z0-9-]: nothing to escape
    }

    /** jsonString quotes s as a JSON string. */
    static String jsonString(String s) {
        var b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    static String pathEscape(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
    }

    static String env(String name, String fallback) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? fallback : v;
    }

    static void fail(String msg) {
        System.err.println("UNEXPECTED: " + msg);
        System.exit(1);
    }

    /**
     * Json is a small but complete JSON parser: objects become Maps, arrays
     * Lists, numbers Doubles, and true/false/null Booleans and null.
     */
    static final class Json {
        private final String s;
        private int i;

        Json(String s) { this.s = s; }

        Object parse() {
            Object v = value();
            ws();
            if (i != s.length()) throw error("trailing data");
            return v;
        }

        private Object value() {
            ws();
            if (i >= s.length()) throw error("unexpected end");
            char c = s.charAt(i);
            switch (c) {
                case '{': return object();
                case '[': return array();
                case '"': return string();
                case 't': return literal("true", Boolean.TRUE);
                case 'f': return literal("false", Boolean.FALSE);
                case 'n': return literal("null", null);
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) return number();
                    throw error("unexpected '" + c + "'");
            }
        }

        private Map<String, Object> object() {
            var m = new LinkedHashMap<String, Object>();
            i++; // {
            ws();
            if (accept('}')) return m;
            do {
                ws();
                if (!(i < s.length() && s.charAt(i) == '"')) throw error("expected a key");
                String k = string();
                ws();
                expect(':');
                m.put(k, value());
                ws();
            } while (accept(','));
            expect('}');
            return m;
        }

        private List<Object> array() {
            var l = new ArrayList<Object>();
            i++; // [
            ws();
            if (accept(']')) return l;
            do {
                l.add(value());
                ws();
            } while (accept(','));
            expect(']');
            return l;
        }

        private String string() {
            var b = new StringBuilder();
            i++; // opening quote
            while (true) {
                if (i >= s.length()) throw error("unterminated string");
                char c = s.charAt(i++);
                if (c == '"') return b.toString();
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                if (i >= s.length()) throw error("unterminated string");
                char e = s.charAt(i++);
                switch (e) {
                    case '"', '\\', '/' -> b.append(e);
                    case 'b' -> b.append('\b');
                    case 'f' -> b.append('\f');
                    case 'n' -> b.append('\n');
                    case 'r' -> b.append('\r');
                    case 't' -> b.append('\t');
                    case 'u' -> {
                        if (i + 4 > s.length()) throw error("bad \\u escape");
                        b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                    }
                    default -> throw error("bad escape");
                }
            }
        }

        private Double number() {
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            try {
                return Double.valueOf(s.substring(start, i));
            } catch (NumberFormatException e) {
                throw error("bad number");
            }
        }

        private Object literal(String word, Object v) {
            if (!s.startsWith(word, i)) throw error("bad literal");
            i += word.length();
            return v;
        }

        private void ws() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) i++;
        }

        /** accept consumes c if it is next. */
        private boolean accept(char c) {
            if (i < s.length() && s.charAt(i) == c) {
                i++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!accept(c)) throw error("expected '" + c + "'");
        }

        private IllegalArgumentException error(String msg) {
            return new IllegalArgumentException("JSON: " + msg + " at offset " + i);
        }
    }
}

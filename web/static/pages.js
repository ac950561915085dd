// Conveniences of twofa's hosted pages: copying the setup key,
// downloading or printing backup codes, and the countdown of "Send
// another code". Every page works without them; their buttons stay hidden
// until this script shows them, and a resend asked for too soon is
// refused with the time to wait.
(function () {
  "use strict";

  function say(text) {
    var s = document.getElementById("copy-status");
    if (s) s.textContent = text;
  }

  if (navigator.clipboard && window.isSecureContext) {
    document.querySelectorAll("[data-copy]").forEach(function (b) {
      b.hidden = false;
      b.addEventListener("click", function () {
        navigator.clipboard.writeText(b.getAttribute("data-copy")).then(
          function () { say("Copied."); },
          function () { say("Couldn't copy: select the key and copy it yourself."); });
      });
    });
  }

  function codesText() {
    var lines = ["twofa backup codes", "Each code works once.", ""];
    document.querySelectorAll("#backup-codes code").forEach(function (c) {
      lines.push(c.textContent.trim());
    });
    lines.push("");
    return lines.join("\r\n");
  }

  document.querySelectorAll("[data-download]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var url = URL.createObjectURL(new Blob([codesText()], { type: "text/plain;charset=utf-8" }));
      var a = document.createElement("a");
      a.href = url;
      a.download = b.getAttribute("data-download");
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    });
  });

  document.querySelectorAll("[data-print]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () { window.print(); });
  });
})();

// The resend button waits until a resend is accepted, and says how long.
// The page gives the seconds left, not a time: the visitor's clock may
// be set wrong.
(function () {
  "use strict";
  var b = document.querySelector("[data-resend-in]");
  if (!b) return;
  var after = Date.now() + Number(b.getAttribute("data-resend-in")) * 1000;
  var label = b.textContent;
  function tick() {
    var left = Math.ceil((after - Date.now()) / 1000);
    if (left > 0) {
      b.disabled = true;
      b.textContent = label + " (in " + left + " s)";
      setTimeout(tick, 1000);
    } else {
      b.disabled = false;
      b.textContent = label;
    }
  }
  tick();
})();

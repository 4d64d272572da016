"use strict";
// The live part of the payment page. The server renders the whole page for the invoice as it stands;
// this script only keeps it current: the countdown, the state (through the invoice's stream), and the
// copy and print buttons, which need a script to work and so stay hidden without one.
(function () {
  var body = document.body;
  var status = document.getElementById("status");
  var state = body.getAttribute("data-state");
  var ended = { paid: 1, expired: 1, cancelled: 1, failed: 1 };
  // Count down on the server's clock, not the phone's: a customer's phone may be minutes off, and
  // the deadline is DOKU's.
  var skew = Number(body.getAttribute("data-now")) - Date.now();
  var expires = Date.parse(body.getAttribute("data-expires") || "");
  var stream = null;

  function now() { return Date.now() + skew; }
  function $(id) { return document.getElementById(id); }

  // show switches the page to a state's view: the parts marked for it appear, the others hide, and
  // the status line (a live region) tells a screen reader.
  function show(next) {
    if (next === state || !status.hasAttribute("data-" + next)) return;
    state = next;
    body.setAttribute("data-state", next);
    var parts = document.querySelectorAll("[data-when]");
    for (var i = 0; i < parts.length; i++) {
      parts[i].hidden = parts[i].getAttribute("data-when") !== next;
    }
    status.textContent = status.getAttribute("data-" + next);
  }

  function rupiah(n) {
    return "Rp" + String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ".");
  }

  // wib writes a time as the server's FormatWIB does.
  function wib(iso, el) {
    var t = new Date(Date.parse(iso) + 7 * 3600 * 1000);
    if (isNaN(t)) return "";
    var days = el.getAttribute("data-days").split(","), months = el.getAttribute("data-months").split(",");
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return days[t.getUTCDay()] + ", " + t.getUTCDate() + " " + months[t.getUTCMonth()] + " " + t.getUTCFullYear() + " " +
      el.getAttribute("data-at") + "\u00a0" + two(t.getUTCHours()) + el.getAttribute("data-sep") + two(t.getUTCMinutes()) + "\u00a0WIB";
  }

  // apply shows the invoice as a stream message has it: the first message of every (re)connection
  // is the invoice as it stands, so a change made while the page was disconnected is never missed.
  function apply(inv) {
    if (!inv || !inv.status) return;
    if (inv.expires_at) expires = Date.parse(inv.expires_at);
    var next = inv.status;
    if (next === "pending" && state === "creating") {
      // The code was issued: the server renders it with its steps.
      location.reload();
      return;
    }
    if (next === "pending" && expires <= now()) next = "expired";
    if (next === "paid") {
      $("paid-amount").textContent = rupiah(inv.total_paid || inv.amount);
      if (inv.paid_at) {
        $("paid-at").textContent = wib(inv.paid_at, $("paid-at"));
        $("paid-row").hidden = false;
      }
    }
    show(next);
    if (ended[inv.status] && stream) {
      stream.close();
      stream = null;
    }
  }

  var left = $("left");
  function tick() {
    if (!left || isNaN(expires)) return;
    var u = left.getAttribute("data-units").split(",");
    var s = Math.max(0, Math.floor((expires - now()) / 1000));
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60, sec = s % 60;
    left.textContent = d > 0 ? d + " " + u[0] + " " + h + " " + u[1] + " " + m + " " + u[2] :
      h > 0 ? h + " " + u[1] + " " + m + " " + u[2] + " " + sec + " " + u[3] :
      m > 0 ? m + " " + u[2] + " " + sec + " " + u[3] : sec + " " + u[3];
    // The code cannot be paid at the counter after its deadline, whatever the stream says yet.
    if (s === 0 && state === "pending") show("expired");
  }
  tick();
  setInterval(tick, 1000);

  var copy = $("copy"), code = $("code"), msg = $("copy-msg");
  if (copy && code) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      var manual = function () {
        var range = document.createRange();
        range.selectNodeContents(code);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        msg.textContent = msg.getAttribute("data-manual");
      };
      msg.textContent = "";
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(code.getAttribute("data-code")).then(function () {
          msg.textContent = msg.getAttribute("data-ok");
        }, manual);
      } else {
        manual();
      }
    });
  }

  var print = $("print");
  if (print) {
    print.hidden = false;
    print.addEventListener("click", function () { window.print(); });
  }

  // The stream: EventSource reconnects by itself (with Last-Event-ID) after a dropped connection; a
  // refused one (the service restarting, too many streams) is tried again here, less and less often.
  var types = ["invoice.snapshot", "invoice.pending", "invoice.paid", "invoice.expired", "invoice.cancelled", "invoice.failed"];
  var wait = 2000;
  function onMessage(e) {
    var m;
    try { m = JSON.parse(e.data); } catch (_) { return; }
    wait = 2000;
    // Whether the page is following the invoice right now (tests wait for it).
    body.setAttribute("data-live", "1");
    apply(m && m.data && m.data.invoice);
  }
  function connect() {
    stream = new EventSource(body.getAttribute("data-stream"));
    for (var i = 0; i < types.length; i++) stream.addEventListener(types[i], onMessage);
    stream.addEventListener("error", function () {
      body.removeAttribute("data-live");
      if (stream && stream.readyState === EventSource.CLOSED) {
        stream = null;
        setTimeout(connect, wait);
        wait = Math.min(wait * 2, 60000);
      }
    });
  }
  if (window.EventSource && body.getAttribute("data-stream") && !ended[body.getAttribute("data-status")]) connect();
})();

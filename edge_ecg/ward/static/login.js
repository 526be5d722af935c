"use strict";
// Posts JSON (a cross-site form cannot), the session comes back as an HttpOnly cookie.
document.getElementById("login").addEventListener("submit", async ev => {
  ev.preventDefault();
  const err = document.getElementById("error");
  err.textContent = "";
  try {
    const r = await fetch("/login", {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({user: document.getElementById("user").value,
                            password: document.getElementById("password").value})});
    if (r.ok) { location.replace("/"); return; }
    const j = await r.json().catch(() => ({}));
    err.textContent = j.error || ("refused (" + r.status + ")");
  } catch (e) {
    err.textContent = "the station cannot be reached";
  }
});

#!/usr/bin/env node
// browser.mjs URL — a stand-in for the web browser an app opens (set as
// BROWSER, which xdg-open honours): hands URL to the stand-in browser the
// Go test serves at STANDIN_BROWSER_URL, which signs in and follows the
// redirect back to the app.
const res = await fetch(`${process.env.STANDIN_BROWSER_URL}/open?url=${encodeURIComponent(process.argv[2])}`);
if (!res.ok) {
  console.error(`stand-in browser: ${res.status} ${await res.text()}`);
  process.exit(1);
}

// The managers' dashboard as a manager uses it, in headless Chromium.
// Run by run.sh, which starts the server and sets BASE_URL, MANAGER_KEY,
// COLLECTOR_KEY, CHROMIUM and PRIORITIZE_ARTIFACTS.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";

const base = process.env.BASE_URL;
const managerKey = process.env.MANAGER_KEY;
const collectorKey = process.env.COLLECTOR_KEY;
const artifacts = process.env.PRIORITIZE_ARTIFACTS;
for (const [name, value] of Object.entries({ BASE_URL: base, MANAGER_KEY: managerKey, COLLECTOR_KEY: collectorKey, PRIORITIZE_ARTIFACTS: artifacts })) {
  assert.ok(value, `${name} is not set (run tests/browser/run.sh)`);
}

const api = await fetch(`${base}/v1/segments`, { headers: { Authorization: `Bearer ${managerKey}` } });
assert.equal(api.status, 200, "GET /v1/segments with the manager key");
const segments = await api.json();
assert.ok(segments.previous, "the run serves a second day, so there is a previous plan");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const failures = [];
let step = "start";
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  // Anything the page logs as an error fails the test, except the refused
  // keys this test sends on purpose.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[13]/.test(m.text())) failures.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));

  step = "the page asks for a key";
  await page.goto(`${base}/dashboard`);
  await page.locator("#login").waitFor({ state: "visible" });
  assert.equal(await page.locator("#board").isVisible(), false);

  step = "a wrong key shows an error";
  await page.fill("#key", "not-a-key");
  await page.click("#login button[type=submit]");
  await page.locator("#login-error").waitFor({ state: "visible" });
  assert.match(await page.locator("#login-error").innerText(), /refused \(401\)/);
  assert.equal(await page.locator("#board").isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "a refused key is not kept");

  step = "a key without the manager role shows an error";
  await page.fill("#key", collectorKey);
  await page.click("#login button[type=submit]");
  await page.waitForFunction(() => /manager role \(403\)/.test(document.getElementById("login-error").textContent));
  assert.equal(await page.locator("#board").isVisible(), false);

  step = "the manager key opens the board";
  await page.fill("#key", managerKey);
  await page.click("#login button[type=submit]");
  await page.locator("#heatmap td[data-tier]").first().waitFor();
  assert.ok(!page.url().includes(managerKey), "the key is never in the address");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("prioritize.managerKey")), managerKey);
  assert.match(await page.locator("#plan-line").innerText(),
    new RegExp(`Plan ${segments.plan_id} of ${segments.day}.*compared with plan ${segments.previous.plan_id}`));

  // The figure as the page shows it, back to the API's plain decimal.
  const plain = (text) => text.trim().replace(/,/g, "").replace(/^−/, "-");
  step = "the heat map's numbers equal the API's";
  for (const [metric, field] of [["accounts", (s) => String(s.accounts)], ["balance", (s) => s.balance], ["expected_value", (s) => s.expected_value]]) {
    await page.check(`input[name=metric][value=${metric}]`);
    const shown = await page.$$eval("#heatmap td[data-tier]", (cells) => cells.map((c) => ({
      tier: c.dataset.tier, bucket: c.dataset.bucket, text: c.querySelector(".v").textContent,
    })));
    assert.equal(shown.length, segments.risk_tiers.length * segments.dpd_buckets.length, "one cell per tier and bucket");
    assert.equal(shown.length, segments.segments.length);
    for (const s of segments.segments) {
      const cell = shown.find((c) => c.tier === s.risk_tier && c.bucket === s.dpd_bucket);
      assert.ok(cell, `no cell for ${s.risk_tier} × ${s.dpd_bucket}`);
      assert.equal(plain(cell.text), field(s), `${metric} of ${s.risk_tier} × ${s.dpd_bucket}`);
    }
    if (metric === "balance") await page.screenshot({ path: path.join(artifacts, "dashboard-balance.png") });
  }
  await page.check("input[name=metric][value=accounts]");
  assert.ok(segments.segments.some((s) => s.accounts > 0 && s.change.accounts !== 0), "the two days differ somewhere");
  for (const s of segments.segments.filter((s) => s.change.accounts !== 0).slice(0, 5)) {
    const change = await page.locator(`#heatmap td[data-tier="${s.risk_tier}"][data-bucket="${s.dpd_bucket}"] .d`).innerText();
    assert.equal(plain(change.replace(/^[▲▼] /, s.change.accounts < 0 ? "-" : "")), String(s.change.accounts), `change of ${s.risk_tier} × ${s.dpd_bucket}`);
  }

  step = "the totals and the charts";
  assert.equal(plain(await page.locator("#card-balance .value").innerText()), segments.totals.balance);
  assert.equal(plain(await page.locator("#card-value .value").innerText()), segments.totals.expected_value);
  assert.match(await page.locator("#card-balance").innerText(), new RegExp(segments.currency));
  const mixTotals = await page.$$eval("#mix text[data-strategy]", (ts) => Object.fromEntries(ts.map((t) => [t.dataset.strategy, t.textContent])));
  for (const q of segments.queues.filter((q) => q.planned > 0)) {
    assert.equal(plain(mixTotals[q.strategy] ?? ""), String(q.planned), `strategy mix of ${q.strategy}`);
  }
  const fills = await page.$$eval("#queues text[data-strategy]", (ts) => Object.fromEntries(ts.map((t) => [t.dataset.strategy, t.textContent])));
  for (const q of segments.queues.filter((q) => q.capacity !== null)) {
    assert.match(fills[q.strategy] ?? "", new RegExp(`^${q.planned.toLocaleString("en")} of ${q.capacity.toLocaleString("en")}`), `queue fill of ${q.strategy}`);
  }
  const deciles = (segments.calibration.outcomes?.deciles.length ?? 0) + segments.calibration.held_out.deciles.length;
  assert.equal(await page.locator("#calibration circle").count(), deciles, "one point per decile and series");
  assert.equal(await page.locator("#blocked tbody tr").count(), Object.keys(segments.blocked).length);

  step = "the CSV download holds the segment table";
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  assert.equal(download.suggestedFilename(), `segments-plan-${segments.plan_id}-${segments.day}.csv`);
  const csv = (await readFile(await download.path(), "utf8")).trim().split("\n").map((l) => l.split(","));
  const header = csv[0];
  assert.equal(csv.length - 1, segments.segments.length);
  for (const [i, s] of segments.segments.entries()) {
    const row = Object.fromEntries(header.map((h, k) => [h, csv[i + 1][k]]));
    assert.equal(row.risk_tier, s.risk_tier);
    assert.equal(row.accounts, String(s.accounts));
    assert.equal(row[`balance_${segments.currency}`], s.balance);
    assert.equal(row.accounts_change, String(s.change.accounts));
  }

  step = "screenshots";
  await page.screenshot({ path: path.join(artifacts, "dashboard.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(artifacts, "dashboard-laptop.png") });

  step = "the key lasts for the tab's session, and is forgotten on request";
  await page.reload();
  await page.locator("#heatmap td[data-tier]").first().waitFor();
  await page.click("#forget");
  await page.locator("#login").waitFor({ state: "visible" });
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);

  step = "a phone-sized screen";
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const small = await phone.newPage();
  small.on("pageerror", (e) => failures.push(`page error (phone): ${e.message}`));
  await small.goto(`${base}/dashboard`);
  await small.fill("#key", managerKey);
  await small.click("#login button[type=submit]");
  await small.locator("#heatmap td[data-tier]").first().waitFor();
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone (the heat map scrolls on its own)`);
  await small.screenshot({ path: path.join(artifacts, "dashboard-phone.png"), fullPage: true });
  await phone.close();

  assert.deepEqual(failures, [], "the page logged errors");
  console.log(`dashboard: ${segments.segments.length} cells checked against the API; screenshots in ${artifacts}`);
} catch (e) {
  console.error(`dashboard test failed at: ${step}`);
  if (failures.length) console.error(failures.join("\n"));
  throw e;
} finally {
  await browser.close();
}

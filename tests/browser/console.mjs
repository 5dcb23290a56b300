// Drives `payworker console` in headless Chromium as an operator would, for
// tests/it/console/browser.rs, which starts the console beside a worker, seeds the dead
// letters and checks Redis afterwards. Usage:
//   node console.mjs <base-url> <token> <screenshot-dir> <order-no>
// where <order-no> is the order of the newest `gave_up` letter, the one re-driven here: the
// worker takes its job back and the payment must settle.
// Each step throws on what it does not see; the exit code tells the Rust test.
import { chromium } from 'playwright-core';

const [base, token, out, order] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});
const shot = (page, name) => page.screenshot({ path: `${out}/console-${name}.png`, fullPage: true });
const expect = (cond, what) => { if (!cond) throw new Error(`expected: ${what}`); };

try {
  // Without the token: refused, the login form instead.
  const stranger = await browser.newPage();
  const refused = await stranger.goto(`${base}/queues`);
  expect(refused.status() === 401, `401 without the token, got ${refused.status()}`);
  await shot(stranger, 'refused');

  // Log in through the form; the queues page.
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  await page.goto(`${base}/login`);
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  expect(page.url().endsWith('/queues'), `on /queues after login, got ${page.url()}`);
  expect(await page.locator('table').count() === 1, 'the queues table');
  expect((await page.textContent('body')).includes('create_payment'), 'create_payment listed');
  await shot(page, 'queues');

  // Dead letters filtered by reason; open one; re-drive it; it leaves the list, and the
  // worker settles its payment.
  await page.goto(`${base}/letters`);
  await page.fill('input[name=reason]', 'gave_up');
  await Promise.all([page.waitForNavigation(), page.click('form[action="/letters"] button')]);
  const reasons = await page.locator('#letters td.reason').allTextContents();
  expect(reasons.length === 2 && reasons.every((r) => r === 'gave_up'), `two gave_up letters, got ${reasons}`);
  await shot(page, 'letters');
  const first = page.locator('#letters a').first();
  const id = await first.textContent();
  await Promise.all([page.waitForNavigation(), first.click()]);
  expect((await page.textContent('#letter')).includes(id), `the letter ${id} shown`);
  expect((await page.textContent('#payload')).includes(order), `the letter of order ${order}`);
  await shot(page, 'letter');
  await Promise.all([page.waitForNavigation(), page.click('#redrive')]);
  expect((await page.textContent('#outcome')).includes('back on create_payment'), 're-driven');
  await page.goto(`${base}/letters?reason=gave_up`);
  const left = await page.locator('#letters a').allTextContents();
  expect(left.length === 1 && !left.includes(id), `${id} gone from the list, got ${left}`);
  // The worker charges it with the sandbox: the payment page shows it settled (looked up
  // again until it does, for up to 15 seconds).
  let status = null;
  for (let tries = 0; tries < 30 && status !== 'succeeded'; tries++) {
    if (tries > 0) await page.waitForTimeout(500);
    await page.goto(`${base}/payments?order_no=${encodeURIComponent(order)}`);
    status = (await page.locator('#status').count()) ? await page.textContent('#status') : null;
  }
  expect(status === 'succeeded', `payment ${order} succeeded, last seen ${status}`);
  const settled = await page.locator('#timeline td.type').allTextContents();
  expect(settled.includes('payment.succeeded'), `payment.succeeded in its timeline, got ${settled}`);
  await shot(page, 'settled');

  // Bulk delete of the `invalid` letters: refused with the wrong count, done with the right.
  await page.goto(`${base}/letters?reason=invalid`);
  await Promise.all([page.waitForNavigation(), page.click('text=Delete all')]);
  const count = (await page.textContent('#count strong')).trim();
  expect(count === '3', `3 letters to delete, got ${count}`);
  await page.fill('#typed', '2');
  await Promise.all([page.waitForNavigation(), page.click('#confirm')]);
  expect((await page.textContent('#outcome')).includes('Nothing was changed'), 'refused with 2');
  await page.goBack();
  await page.fill('#typed', count);
  await shot(page, 'bulk');
  await Promise.all([page.waitForNavigation(), page.click('#confirm')]);
  expect((await page.textContent('#outcome')).includes('3 deleted'), '3 deleted');
  await shot(page, 'bulk-done');

  // Payments: the unknown one listed, opened, resolved; its timeline shows the event.
  await page.goto(`${base}/payments`);
  expect((await page.textContent('body')).includes('Waiting in unknown (1)'), 'one unknown payment');
  await shot(page, 'payments');
  await Promise.all([page.waitForNavigation(), page.click('table.waiting a')]);
  expect((await page.textContent('#status')) === 'unknown', 'status unknown');
  await page.selectOption('select[name=status]', 'succeeded');
  await page.fill('input[name=payment_id]', 'pi_browser_1');
  await page.fill('input[name=reason]', 'charged, per the gateway dashboard');
  await shot(page, 'resolve');
  await Promise.all([page.waitForNavigation(), page.click('#resolve button')]);
  expect((await page.textContent('#outcome')).includes('unknown → succeeded'), 'resolved');
  await Promise.all([page.waitForNavigation(), page.click('text=Back to the payment')]);
  expect((await page.textContent('#status')) === 'succeeded', 'status succeeded');
  const types = await page.locator('#timeline td.type').allTextContents();
  expect(types.includes('payment.succeeded'), `payment.succeeded in the timeline, got ${types}`);
  await shot(page, 'payment');
  console.log('ok');
} finally {
  await browser.close();
}

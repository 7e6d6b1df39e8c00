// The files journey, in a browser, by labels and button text: an owner signs up, verifies
// through the emailed link, opens Files from the navigation (nothing stored, the usage bar at
// zero), uploads a PNG made here and a short WebM recorded in the page from a canvas (the
// upload progress reaches 100% each time, without leaving the page), sees the image preview
// load and the video play in the page (the content route answers Range with 206), downloads
// the image (the same bytes), deletes both files and sees the usage bar back at zero. Every
// page is loaded without console errors or CSP violations (lib.mjs fails any step in which a
// page reports one): the progress script is a file served by the app.
//
// Run by tests/tests/browser.rs, which stores the app's files in a temporary folder.

import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

import {
  button,
  emailLinks,
  expectHidden,
  expectPath,
  expectText,
  expectVisible,
  field,
  heading,
  journey,
  link,
  newPage,
  shot,
  signUp,
  step,
  submit,
  unique,
  until,
  url,
} from './lib.mjs';

const run = unique();
const organisation = `Delta Docs ${run}`;
const owner = { name: 'Dana Delta', email: `dana-${run}@delta.test`, password: `delta owner passphrase ${run}` };
const emailLink = emailLinks();

// ---------------------------------------------------------------------------------------------
// A small valid PNG: 48×32, a red square on blue.

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

function png(width, height) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = [0]; // no filter
    for (let x = 0; x < width; x += 1) {
      const inside = x >= 12 && x < 36 && y >= 6 && y < 26;
      row.push(...(inside ? [220, 40, 40] : [40, 80, 200]));
    }
    rows.push(Buffer.from(row));
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const IMAGE = { name: `square-${run}.png`, mimeType: 'image/png', buffer: png(48, 32) };

/** About 1.5 s of WebM (VP8) recorded in the page from an animated canvas. */
async function recordClip(page) {
  const bytes = await page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 160;
    canvas.height = 120;
    const context = canvas.getContext('2d');
    const type = ['video/webm;codecs=vp8', 'video/webm;codecs=vp9', 'video/webm'].find((t) => MediaRecorder.isTypeSupported(t));
    if (!type) throw new Error('this Chromium records no WebM');
    const recorder = new MediaRecorder(canvas.captureStream(30), { mimeType: type });
    const parts = [];
    recorder.ondataavailable = (event) => event.data.size && parts.push(event.data);
    const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
    let frame = 0;
    const draw = () => {
      context.fillStyle = `hsl(${(frame * 7) % 360} 70% 50%)`;
      context.fillRect(0, 0, 160, 120);
      context.fillStyle = '#fff';
      context.fillRect((frame * 4) % 160, 40, 30, 30);
      frame += 1;
    };
    draw();
    recorder.start(250);
    const timer = setInterval(draw, 33);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    clearInterval(timer);
    recorder.stop();
    await stopped;
    return Array.from(new Uint8Array(await new Blob(parts, { type }).arrayBuffer()));
  });
  return Buffer.from(bytes);
}

// ---------------------------------------------------------------------------------------------

const usageBar = (page) => page.locator('#usage-bar');

async function expectUsage(page, expected, describeIt) {
  await until(
    async () => Number(await usageBar(page).getAttribute('value')) === expected,
    async () => `expected the usage bar at ${describeIt}, it reads ${await usageBar(page).getAttribute('value')} (${await page.locator('#usage-text').innerText()})`,
  );
}

/** Chooses `file` in the upload form, sends it, and waits until the page says it is stored. */
async function upload(page, file) {
  await field(page, 'File to upload').setInputFiles(file);
  await button(page, 'Upload').click();
  const progress = field(page, 'Upload progress');
  await expectVisible(progress);
  await until(
    async () => (await progress.evaluate((p) => p.value)) === 100,
    async () => `expected the upload progress of ${file.name} at 100%, it shows ${await page.locator('#upload-percent').innerText()}`,
    { timeoutMs: 30_000 },
  );
  await expectText(page.locator('#upload-status'), 'The file was uploaded.');
  await expectText(page.locator('#upload-percent'), '100%');
  // The list was refreshed in place: the page did not navigate.
  await expectPath(page, '/files');
  await expectVisible(page.locator('#files tr', { hasText: file.name }));
}

await journey('files journey', async (browser) => {
  const page = await newPage(browser, 'owner', { acceptDownloads: true });

  await step('the owner signs up and verifies through the emailed link', async () => {
    await signUp(page, organisation, owner);
    await page.goto(await emailLink(owner.email, '/verify?token='));
    await expectPath(page, '/dashboard');
  });

  await step('the Files link opens the files page: nothing stored, the usage bar at zero', async () => {
    await link(page.getByRole('navigation'), 'Files').click();
    await expectPath(page, '/files');
    await expectVisible(heading(page, `Files of ${organisation}`));
    await expectVisible(page.locator('#no-files'));
    await expectVisible(field(page, 'Storage used'));
    await expectUsage(page, 0, 'zero');
    await expectText(page.locator('#usage-text'), '0 B of');
    await expectHidden(field(page, 'Upload progress'));
    await shot(page, 'files-empty');
  });

  let video;
  await step('the owner uploads an image: the progress reaches 100% and the preview loads', async () => {
    await upload(page, IMAGE);
    const preview = page.getByRole('img', { name: `Preview of ${IMAGE.name}` });
    await expectVisible(preview);
    await until(
      () => preview.evaluate((img) => img.complete && img.naturalWidth === 48 && img.naturalHeight === 32),
      async () => `expected the preview of ${IMAGE.name} to load at 48×32, it is ${await preview.evaluate((img) => `${img.naturalWidth}×${img.naturalHeight}, complete: ${img.complete}`)}`,
    );
    await expectUsage(page, IMAGE.buffer.length, `${IMAGE.buffer.length} bytes`);
    await expectText(page.locator('#files tr', { hasText: IMAGE.name }), 'image/png');
  });

  await step('the owner uploads a short video, which plays in the page (Range answers 206)', async () => {
    video = { name: `clip-${run}.webm`, mimeType: 'video/webm', buffer: await recordClip(page) };
    if (video.buffer.length < 1_000) throw new Error(`the recorded clip has only ${video.buffer.length} bytes`);
    await upload(page, video);
    await expectText(page.locator('#files tr', { hasText: video.name }), 'video/webm');
    await expectUsage(page, IMAGE.buffer.length + video.buffer.length, 'the two files');
    const player = page.locator(`video[aria-label="Play ${video.name}"]`);
    await expectVisible(player);
    const played = await player.evaluate(async (v) => {
      v.muted = true;
      await v.play();
      const started = v.currentTime;
      await new Promise((resolve) => setTimeout(resolve, 800));
      const state = { readyState: v.readyState, started, now: v.currentTime, error: v.error && v.error.message };
      v.pause();
      return state;
    });
    if (played.error || played.readyState < 2 || !(played.now > played.started)) {
      throw new Error(`the video did not play: ${JSON.stringify(played)}`);
    }
    // The player's requests are ranged; so is this one.
    const ranged = await player.evaluate(async (v) => {
      const response = await fetch(v.currentSrc, { headers: { Range: 'bytes=0-9' } });
      return { status: response.status, range: response.headers.get('content-range'), length: (await response.arrayBuffer()).byteLength };
    });
    const expected = { status: 206, range: `bytes 0-9/${video.buffer.length}`, length: 10 };
    if (JSON.stringify(ranged) !== JSON.stringify(expected)) {
      throw new Error(`a ranged request answered ${JSON.stringify(ranged)}, expected ${JSON.stringify(expected)}`);
    }
    await shot(page, 'files-listed');
  });

  await step('the owner downloads the image: the same bytes, under its name', async () => {
    const row = page.locator('#files tr', { hasText: IMAGE.name });
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      link(row, `Download ${IMAGE.name}`).click(),
    ]);
    if (download.suggestedFilename() !== IMAGE.name) {
      throw new Error(`the download is named ${download.suggestedFilename()}, expected ${IMAGE.name}`);
    }
    const saved = readFileSync(await download.path());
    if (!saved.equals(IMAGE.buffer)) throw new Error(`the download has ${saved.length} bytes that differ from the upload`);
  });

  await step('the owner deletes both files: the list is empty and the usage bar back at zero', async () => {
    await submit(page, `Delete ${IMAGE.name}`);
    await expectPath(page, '/files');
    await expectText(page.locator('main .notice'), 'The file was deleted.');
    await expectHidden(page.locator('#files tr', { hasText: IMAGE.name }));
    await expectUsage(page, video.buffer.length, 'the video alone');
    await submit(page, `Delete ${video.name}`);
    await expectVisible(page.locator('#no-files'));
    await expectUsage(page, 0, 'zero again');
    await expectText(page.locator('#usage-text'), '0 B of');
    await shot(page, 'files-deleted');
  });
});

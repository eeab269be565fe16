// The review page's caption workbench: one editable cue list per track,
// synced with playback (the cue at the playhead is highlighted and scrolled
// into view; a cue's time button seeks), every edit previewed on the video
// at once through a text track built from the list, a waveform with the
// cues over it, keyboard flow (split, merge, nudge, shift), find and
// replace, the curators' glossary and the style rules checked live.
// The list is the form: saving posts it as it stands (start_i, end_i,
// text_i, n), so splits and merges need nothing new from the server.
(function () {
  "use strict";
  const video = document.getElementById("player");
  const select = document.getElementById("track-select");
  const bench = document.getElementById("workbench");
  if (!video || !select || !bench) return;

  // HLS through Media Source Extensions where the browser has no native HLS
  // (Chromium, Firefox): the same byte-range playlists Safari plays. The
  // worker is off: the CSP allows no blob: scripts.
  if (video.dataset.hls && !video.canPlayType("application/vnd.apple.mpegurl") &&
      window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls({ enableWorker: false });
    hls.on(window.Hls.Events.ERROR, (_, data) => {
      if (data.fatal) { video.dataset.player = "mp4"; hls.destroy(); video.load(); }
    });
    hls.loadSource(video.dataset.hls);
    hls.attachMedia(video);
    video.dataset.player = "hls.js";
  } else {
    video.dataset.player = "native";
  }

  const fps = parseFloat(bench.dataset.fps) || 25;
  const frame = 1 / fps;
  const rules = {
    maxLine: parseInt(bench.dataset.maxLine, 10) || 42,
    maxLines: parseInt(bench.dataset.maxLines, 10) || 2,
    minDuration: parseFloat(bench.dataset.minDuration) || 0.833,
    maxDuration: parseFloat(bench.dataset.maxDuration) || 7,
    maxCps: parseFloat(bench.dataset.maxCps) || 17,
    minGap: parseFloat(bench.dataset.minGap) || 0,
  };
  const segmenter = window.Intl && Intl.Segmenter ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;
  const graphemes = s => segmenter ? Array.from(segmenter.segment(s)).length : Array.from(s).length;
  const round3 = t => Math.round(t * 1000) / 1000;
  const fmt = t => round3(Math.max(0, t)).toFixed(3);

  // ---- the cue list ---------------------------------------------------
  const panels = Array.from(document.querySelectorAll(".track-panel"));
  const visible = () => panels.find(p => !p.hidden) || null;
  const rowsOf = panel => Array.from(panel.querySelectorAll("li.cue"));
  const cueOf = li => ({
    start: parseFloat(li.querySelector("input.start").value),
    end: parseFloat(li.querySelector("input.end").value),
    text: li.querySelector("textarea").value,
  });
  function setTimes(li, start, end) {
    if (start !== undefined) li.querySelector("input.start").value = fmt(start);
    if (end !== undefined) li.querySelector("input.end").value = fmt(end);
    li.dataset.start = li.querySelector("input.start").value;
    li.dataset.end = li.querySelector("input.end").value;
    li.querySelector(".cue-time").textContent = "▶ " + li.dataset.start;
  }
  // Names and labels follow the list's order after a split or merge.
  function renumber(panel) {
    const rows = rowsOf(panel);
    rows.forEach((li, i) => {
      li.querySelector("input.start").name = "start_" + i;
      li.querySelector("input.start").setAttribute("aria-label", "Cue " + (i + 1) + " start");
      li.querySelector("input.end").name = "end_" + i;
      li.querySelector("input.end").setAttribute("aria-label", "Cue " + (i + 1) + " end");
      li.querySelector("textarea").name = "text_" + i;
      li.querySelector("textarea").setAttribute("aria-label", "Cue " + (i + 1) + " text");
      li.querySelector(".cue-time").setAttribute("aria-label", "Play cue " + (i + 1) + " from " + li.dataset.start + " s");
    });
    panel.querySelector("input[name='n']").value = rows.length;
  }

  // The cue being worked on: the one holding focus, else the one at the
  // playhead, else the last one before it.
  let current = null;
  function currentRow(panel) {
    const focused = document.activeElement && document.activeElement.closest("li.cue");
    if (focused && panel.contains(focused)) return focused;
    if (current && panel.contains(current)) return current;
    const now = video.currentTime;
    const rows = rowsOf(panel);
    return rows.filter(li => cueOf(li).start <= now).pop() || rows[0] || null;
  }
  function focusRow(li) {
    if (!li) return;
    current = li;
    li.querySelector("textarea").focus({ preventScroll: true });
    li.scrollIntoView({ block: "nearest" });
  }

  // ---- preview on the video -------------------------------------------
  // Each panel gets a text track built from its list, shown instead of the
  // server's file while the page is open: an edit shows on the video as soon
  // as it is typed.
  const editTracks = new Map();
  function editTrack(panel) {
    let t = editTracks.get(panel);
    if (!t) {
      t = video.addTextTrack("subtitles", panel.dataset.track + " (editing)", panel.dataset.lang);
      editTracks.set(panel, t);
    }
    return t;
  }
  function rebuildTrack(panel) {
    const t = editTrack(panel);
    const mode = t.mode;
    t.mode = "hidden"; // cues can be changed in any mode but disabled
    Array.from(t.cues || []).forEach(c => t.removeCue(c));
    for (const li of rowsOf(panel)) {
      const c = cueOf(li);
      if (!(c.end > c.start) || !c.text.trim()) continue;
      const cue = new VTTCue(c.start, c.end, c.text.trim());
      if (panel.dataset.lang && /^(ur|sd|ps|ar|fa)$/.test(panel.dataset.lang)) cue.align = "center";
      t.addCue(cue);
    }
    t.mode = mode === "disabled" ? "hidden" : mode;
  }
  function show(track) {
    panels.forEach(p => { p.hidden = p.dataset.track !== track; });
    for (const t of video.textTracks) {
      const ours = Array.from(editTracks.values()).includes(t);
      if (!ours) t.mode = "disabled";
    }
    editTracks.forEach((t, p) => { t.mode = p.dataset.track === track ? "showing" : "disabled"; });
    current = null;
    const p = visible();
    if (p) { checkAll(p); drawWave(); }
  }

  // ---- style rules, checked live --------------------------------------
  function problems(c, next) {
    const found = [];
    const lines = c.text.split("\n");
    if (lines.length > rules.maxLines) found.push(lines.length + " lines (at most " + rules.maxLines + ")");
    lines.forEach((l, i) => {
      const n = graphemes(l.trim());
      if (n > rules.maxLine) found.push("line " + (i + 1) + " has " + n + " characters (at most " + rules.maxLine + ")");
    });
    const d = c.end - c.start;
    if (!(d > 0)) found.push("ends before it starts");
    else {
      if (d < rules.minDuration - 1e-6) found.push("shown " + d.toFixed(2) + " s (at least " + rules.minDuration.toFixed(2) + " s)");
      if (d > rules.maxDuration + 1e-6) found.push("shown " + d.toFixed(2) + " s (at most " + rules.maxDuration.toFixed(2) + " s)");
      const cps = graphemes(c.text.replace(/\n/g, "")) / d;
      if (cps > rules.maxCps + 1e-6) found.push(cps.toFixed(1) + " characters a second (at most " + rules.maxCps + ")");
    }
    if (next && next.start < c.end - 1e-6) found.push("overlaps the next cue");
    return found;
  }
  function check(li) {
    const next = li.nextElementSibling ? cueOf(li.nextElementSibling) : null;
    const found = problems(cueOf(li), next);
    li.classList.toggle("style-bad", found.length > 0);
    li.querySelector(".style-msg").textContent = found.join("; ");
    return found.length;
  }
  function checkAll(panel) {
    const rows = rowsOf(panel);
    const bad = rows.filter(li => check(li) > 0).length;
    rows.forEach(li => glossaryHints(panel, li));
    panel.querySelector(".style-summary").textContent = bad
      ? bad + " of " + rows.length + " cues break the style rules (marked)."
      : rows.length + " cues, all within the style rules.";
  }

  // ---- the glossary -----------------------------------------------------
  const glossaries = new Map();
  function glossary(panel) {
    if (!glossaries.has(panel)) {
      let g = [];
      try { g = JSON.parse(panel.dataset.glossary || "[]"); } catch (_) { g = []; }
      glossaries.set(panel, g);
    }
    return glossaries.get(panel);
  }
  const escapeRe = s => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  // A variant as a whole word (letters of any script, digits and marks
  // around it end a match), matched without regard to case.
  const variantRe = v => new RegExp("(^|[^\\p{L}\\p{M}\\p{N}])(" + escapeRe(v) + ")(?=$|[^\\p{L}\\p{M}\\p{N}])", "giu");
  function glossaryMatches(panel, text) {
    const found = [];
    for (const [term, variants] of glossary(panel)) {
      for (const v of variants) {
        if (variantRe(v).test(text)) found.push([v, term]);
      }
    }
    return found;
  }
  function applyGlossary(panel, li) {
    const ta = li.querySelector("textarea");
    let text = ta.value;
    let n = 0;
    for (const [term, variants] of glossary(panel)) {
      for (const v of variants) {
        text = text.replace(variantRe(v), (_, before) => { n++; return before + term; });
      }
    }
    if (n) { ta.value = text; edited(panel, li); }
    return n;
  }
  function glossaryHints(panel, li) {
    const box = li.querySelector(".gloss");
    const found = glossaryMatches(panel, li.querySelector("textarea").value);
    // Rebuilt only when the matches change: a button stays put while the
    // curator reaches for it.
    const key = JSON.stringify(found);
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.replaceChildren();
    for (const [variant, term] of found) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "gloss-apply";
      b.textContent = variant + " → " + term;
      b.setAttribute("aria-label", "Replace " + variant + " with the glossary's " + term);
      b.addEventListener("click", () => {
        const ta = li.querySelector("textarea");
        ta.value = ta.value.replace(variantRe(variant), (_, before) => before + term);
        edited(panel, li);
      });
      box.append(b);
    }
  }

  // ---- edits --------------------------------------------------------------
  let pending = 0;
  function edited(panel, li) {
    panel.dataset.dirty = "1";
    if (li) { check(li); glossaryHints(panel, li); if (li.previousElementSibling) check(li.previousElementSibling); }
    // The preview follows within a frame or two, not on every keystroke.
    clearTimeout(pending);
    pending = setTimeout(() => { rebuildTrack(panel); checkAll(panel); drawWave(); follow(); }, 120);
  }
  function result(panel, text) {
    const out = panel.querySelector(".tool-result");
    if (out) out.textContent = text;
  }

  function split(panel) {
    const li = currentRow(panel);
    if (!li) return;
    const c = cueOf(li);
    const ta = li.querySelector("textarea");
    // At the playhead when it is inside the cue, else in the middle.
    let at = video.currentTime;
    if (!(at > c.start + frame && at < c.end - frame)) at = (c.start + c.end) / 2;
    at = Math.round(at * fps) / fps;
    // The text parts at the cursor when typing in the cue, else at the word
    // nearest the same share of the text as the time.
    const words = c.text.split(/\s+/).filter(Boolean);
    let first, second;
    const caret = document.activeElement === ta ? ta.selectionStart : -1;
    if (caret > 0 && caret < c.text.length) {
      first = c.text.slice(0, caret).trim();
      second = c.text.slice(caret).trim();
    } else {
      const k = Math.min(words.length - 1, Math.max(1, Math.round(words.length * (at - c.start) / (c.end - c.start))));
      first = words.slice(0, k).join(" ");
      second = words.slice(k).join(" ");
    }
    const copy = li.cloneNode(true);
    copy.classList.remove("active", "low");
    copy.querySelector(".conf").textContent = "";
    const unsure = copy.querySelector(".unsure");
    if (unsure) unsure.remove();
    ta.value = first;
    copy.querySelector("textarea").value = second;
    setTimes(li, c.start, at);
    setTimes(copy, at, c.end);
    li.after(copy);
    wireRow(panel, copy);
    renumber(panel);
    edited(panel, li);
    edited(panel, copy);
    result(panel, "Split cue at " + fmt(at) + " s.");
    focusRow(copy);
  }

  function merge(panel) {
    const li = currentRow(panel);
    const next = li && li.nextElementSibling;
    if (!next) { result(panel, "No next cue to merge with."); return; }
    const a = cueOf(li), b = cueOf(next);
    li.querySelector("textarea").value = (a.text.trim() + " " + b.text.trim()).trim();
    setTimes(li, Math.min(a.start, b.start), Math.max(a.end, b.end));
    next.remove();
    renumber(panel);
    edited(panel, li);
    result(panel, "Merged two cues.");
    focusRow(li);
  }

  function nudge(panel, edge, frames) {
    const li = currentRow(panel);
    if (!li) return;
    const c = cueOf(li);
    const step = frames * frame;
    if (edge === "start") setTimes(li, Math.max(0, Math.min(c.start + step, c.end - frame)));
    else setTimes(li, undefined, Math.max(c.end + step, c.start + frame));
    edited(panel, li);
    result(panel, "Cue " + edge + " at " + li.dataset[edge] + " s.");
  }

  function shiftFollowing(panel, by) {
    const li = currentRow(panel);
    if (!li || !by) return;
    const rows = rowsOf(panel);
    const from = rows.indexOf(li);
    // Never before zero: the whole block moves by what the first allows.
    const first = cueOf(rows[from]).start;
    const amount = Math.max(by, -first);
    rows.slice(from).forEach(r => { const c = cueOf(r); setTimes(r, c.start + amount, c.end + amount); });
    edited(panel, li);
    result(panel, "Shifted " + (rows.length - from) + " cues by " + amount.toFixed(3) + " s.");
  }

  function replaceAll(panel) {
    const find = panel.querySelector(".find-text").value;
    const repl = panel.querySelector(".replace-text").value;
    if (!find) { result(panel, "Nothing to find."); return; }
    let n = 0;
    for (const li of rowsOf(panel)) {
      const ta = li.querySelector("textarea");
      const parts = ta.value.split(find);
      if (parts.length > 1) {
        n += parts.length - 1;
        ta.value = parts.join(repl);
        edited(panel, li);
      }
    }
    result(panel, n + " replaced.");
  }

  function wireRow(panel, li) {
    li.querySelector(".cue-time").addEventListener("click", () => {
      current = li;
      video.currentTime = cueOf(li).start + 0.001;
      video.play().catch(() => {});
    });
    li.querySelector("textarea").addEventListener("input", () => edited(panel, li));
    li.querySelectorAll("input.t").forEach(i => i.addEventListener("input", () => {
      li.dataset.start = li.querySelector("input.start").value;
      li.dataset.end = li.querySelector("input.end").value;
      edited(panel, li);
    }));
    li.addEventListener("focusin", () => { current = li; });
  }

  for (const panel of panels) {
    rowsOf(panel).forEach(li => wireRow(panel, li));
    panel.querySelector(".split").addEventListener("click", () => split(panel));
    panel.querySelector(".merge").addEventListener("click", () => merge(panel));
    panel.querySelectorAll(".nudge").forEach(b => b.addEventListener("click", () =>
      nudge(panel, b.dataset.edge, parseInt(b.dataset.frames, 10))));
    panel.querySelector(".shift").addEventListener("click", () =>
      shiftFollowing(panel, parseFloat(panel.querySelector(".shift-by").value) || 0));
    panel.querySelector(".replace-all").addEventListener("click", () => replaceAll(panel));
    panel.querySelector(".apply-glossary").addEventListener("click", () => {
      const n = rowsOf(panel).reduce((sum, li) => sum + applyGlossary(panel, li), 0);
      result(panel, n + " glossary replacement(s).");
    });
    panel.querySelector("form.cues").addEventListener("submit", () => { delete panel.dataset.dirty; });
    rebuildTrack(panel);
  }
  // Leaving with unsaved edits asks first.
  window.addEventListener("beforeunload", e => {
    if (panels.some(p => p.dataset.dirty)) { e.preventDefault(); e.returnValue = ""; }
  });

  // ---- keyboard flow ------------------------------------------------------
  document.addEventListener("keydown", e => {
    if (!e.altKey || e.ctrlKey || e.metaKey) return;
    const panel = visible();
    if (!panel) return;
    const key = e.code;
    let done = true;
    if (key === "KeyK") { if (video.paused) video.play().catch(() => {}); else video.pause(); }
    else if (key === "ArrowDown" || key === "ArrowUp") {
      const li = currentRow(panel);
      const to = li && (key === "ArrowDown" ? li.nextElementSibling : li.previousElementSibling);
      if (to) { focusRow(to); video.currentTime = cueOf(to).start + 0.001; }
    }
    else if (key === "BracketLeft" || key === "BracketRight") nudge(panel, e.shiftKey ? "end" : "start", key === "BracketLeft" ? -1 : 1);
    else if (key === "KeyS") split(panel);
    else if (key === "KeyM") merge(panel);
    else if (key === "ArrowLeft" || key === "ArrowRight") shiftFollowing(panel, key === "ArrowLeft" ? -0.1 : 0.1);
    else if (key === "KeyG") { const li = currentRow(panel); if (li) result(panel, applyGlossary(panel, li) + " glossary replacement(s)."); }
    else if (key === "Enter") panel.querySelector("form.cues").requestSubmit();
    else done = false;
    if (done) e.preventDefault();
  });

  // ---- following playback -------------------------------------------------
  function follow() {
    const panel = visible();
    if (!panel) return;
    const now = video.currentTime;
    let active = null;
    for (const li of rowsOf(panel)) {
      const c = cueOf(li);
      const on = now >= c.start && now < c.end;
      li.classList.toggle("active", on);
      if (on && !active) active = li;
    }
    const preview = panel.querySelector(".preview");
    if (preview) preview.textContent = active ? cueOf(active).text : "";
    // Scrolled into view while playing; not while the curator types.
    const typing = document.activeElement && panel.contains(document.activeElement);
    if (active && !typing && active !== follow.last) active.scrollIntoView({ block: "nearest" });
    follow.last = active;
    drawWave();
  }
  video.addEventListener("timeupdate", follow);
  video.addEventListener("seeked", follow);
  (function tick() { if (!video.paused) follow(); requestAnimationFrame(tick); })();

  // ---- the waveform -------------------------------------------------------
  const canvas = document.getElementById("waveform");
  let wave = null; // { rate, peaks }
  const WINDOW_S = 12;
  function view() {
    const duration = isFinite(video.duration) && video.duration > 0 ? video.duration
      : (wave ? wave.peaks.length / wave.rate : WINDOW_S);
    const span = Math.min(WINDOW_S, duration);
    const from = Math.min(Math.max(0, video.currentTime - span / 2), Math.max(0, duration - span));
    return { from, span };
  }
  function drawWave() {
    if (!canvas) return;
    const g = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    const { from, span } = view();
    const x = t => (t - from) / span * w;
    g.clearRect(0, 0, w, h);
    g.fillStyle = "#10222b";
    g.fillRect(0, 0, w, h);
    const panel = visible();
    if (panel) {
      for (const li of rowsOf(panel)) {
        const c = cueOf(li);
        if (!(c.end > from && c.start < from + span)) continue;
        g.fillStyle = li.classList.contains("active") ? "rgba(255,210,122,0.35)" : "rgba(120,190,220,0.22)";
        g.fillRect(x(c.start), 0, x(c.end) - x(c.start), h);
        g.fillStyle = li.classList.contains("style-bad") ? "#ff7a7a" : "#9fd3ea";
        g.fillRect(x(c.start), 0, 2, h);
        g.fillRect(x(c.end) - 2, 0, 2, h);
      }
    }
    if (wave) {
      g.fillStyle = "#e8f4f8";
      const first = Math.floor(from * wave.rate), last = Math.ceil((from + span) * wave.rate);
      const per = (last - first) / w;
      for (let px = 0; px < w; px++) {
        let peak = 0;
        for (let i = Math.floor(first + px * per); i < first + (px + 1) * per; i++) peak = Math.max(peak, wave.peaks[i] || 0);
        const bar = peak / 255 * (h - 4);
        g.fillRect(px, (h - bar) / 2, 1, Math.max(1, bar));
      }
    }
    g.fillStyle = "#ffffff";
    g.fillRect(x(video.currentTime), 0, 1, h);
  }
  if (canvas) {
    if (canvas.dataset.src) {
      fetch(canvas.dataset.src, { credentials: "same-origin" })
        .then(r => r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status)))
        .then(j => {
          wave = { rate: j.peaks_per_second, peaks: j.peaks };
          canvas.dataset.peaks = String(j.peaks.length);
          drawWave();
        })
        .catch(err => { canvas.dataset.error = String(err); });
    }
    // Click to seek; drag near a cue's edge to move that edge.
    let drag = null;
    const timeAt = e => { const r = canvas.getBoundingClientRect(); const { from, span } = view(); return from + (e.clientX - r.left) / r.width * span; };
    canvas.addEventListener("pointerdown", e => {
      const panel = visible();
      const t = timeAt(e);
      const { span } = view();
      const near = span / canvas.getBoundingClientRect().width * 5;
      if (panel) {
        for (const li of rowsOf(panel)) {
          const c = cueOf(li);
          if (Math.abs(c.start - t) < near) { drag = { panel, li, edge: "start" }; break; }
          if (Math.abs(c.end - t) < near) { drag = { panel, li, edge: "end" }; break; }
        }
      }
      if (drag) canvas.setPointerCapture(e.pointerId);
      else video.currentTime = Math.max(0, t);
    });
    canvas.addEventListener("pointermove", e => {
      if (!drag) return;
      const t = Math.round(timeAt(e) * fps) / fps;
      const c = cueOf(drag.li);
      if (drag.edge === "start") setTimes(drag.li, Math.max(0, Math.min(t, c.end - frame)));
      else setTimes(drag.li, undefined, Math.max(t, c.start + frame));
      edited(drag.panel, drag.li);
    });
    canvas.addEventListener("pointerup", () => { drag = null; });
  }

  select.addEventListener("change", () => show(select.value));
  show(select.value);
  follow();
})();

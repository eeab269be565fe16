// Offline bundle pages: caption tracks built from the page itself (browsers
// refuse <track> files on file://), transcript lines that seek the video.
(function () {
  "use strict";
  const video = document.getElementById("player");
  if (!video) return;
  document.querySelectorAll(".captions").forEach(el => {
    let cues = [];
    try { cues = JSON.parse(el.dataset.cues || "[]"); } catch (_) { cues = []; }
    const track = video.addTextTrack("subtitles", el.dataset.label, el.dataset.srclang);
    for (const [start, end, text] of cues) {
      if (end > start) track.addCue(new VTTCue(start, end, text));
    }
    track.mode = el.dataset.default ? "showing" : "hidden";
  });
  document.querySelectorAll("button.seek").forEach(b => b.addEventListener("click", () => {
    video.currentTime = parseFloat(b.dataset.start) + 0.001;
    video.play().catch(() => {});
  }));
})();

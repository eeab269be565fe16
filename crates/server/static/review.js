// Review page: pick the caption track, seek from the cue list, follow playback.
(function () {
  const video = document.getElementById("player");
  const select = document.getElementById("track-select");
  if (!video || !select) return;
  function show(track) {
    document.querySelectorAll(".track-panel").forEach(p => { p.hidden = p.dataset.track !== track; });
    const label = track;
    for (const t of video.textTracks) t.mode = t.label === label ? "showing" : "disabled";
  }
  select.addEventListener("change", () => show(select.value));
  show(select.value);
  document.querySelectorAll(".cue-time").forEach(b => b.addEventListener("click", () => {
    video.currentTime = parseFloat(b.closest(".cue").dataset.start);
    video.play();
  }));
  video.addEventListener("timeupdate", () => {
    const now = video.currentTime;
    document.querySelectorAll(".track-panel:not([hidden]) .cue").forEach(c => {
      c.classList.toggle("active", now >= parseFloat(c.dataset.start) && now < parseFloat(c.dataset.end));
    });
  });
})();

// Review page: pick the caption track, seek from the cue list, follow playback.
(function () {
  const video = document.getElementById("player");
  const select = document.getElementById("track-select");
  if (!video || !select) return;
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

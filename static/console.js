// The console's only script: draws each chart from the JSON beside it (Chart.js, vendored),
// and submits the site switcher when a site is chosen. Every chart's numbers are also in the
// table under it, so a page without this script loses nothing but the pictures.
(function () {
  "use strict";

  // Told apart without colour: each series has its own dash pattern and point shape.
  var COLOURS = ["#1f5fa8", "#c2561a", "#2e7d32", "#7b3fa0", "#8d6e00", "#00838f"];
  var DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3], [1, 2], [12, 6]];
  var POINTS = ["circle", "rect", "triangle", "rectRot", "star", "crossRot"];
  var PATTERN_ALPHA = ["cc", "99", "66", "cc", "99", "66"];

  function format(kind, value) {
    if (value === null || value === undefined) return "–";
    if (kind === "pct") return (value * 100).toFixed(1) + "%";
    if (kind === "money") return value.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    if (kind === "int") return Math.round(value).toLocaleString();
    return value.toLocaleString(undefined, { maximumFractionDigits: 3 });
  }

  function draw(figure) {
    var source = figure.querySelector("script.chart-data");
    var canvas = figure.querySelector("canvas");
    if (!source || !canvas || typeof Chart === "undefined") return;
    var spec = JSON.parse(source.textContent);
    var bar = spec.kind === "bar";
    var datasets = spec.series.map(function (s, i) {
      var colour = COLOURS[i % COLOURS.length];
      return {
        label: s.label,
        data: s.values,
        kind: s.kind,
        borderColor: colour,
        backgroundColor: bar ? colour + PATTERN_ALPHA[i % PATTERN_ALPHA.length] : colour,
        borderWidth: bar ? 1 + (i % 3) : 2,
        borderDash: bar ? [] : DASHES[i % DASHES.length],
        pointStyle: POINTS[i % POINTS.length],
        pointRadius: bar ? 0 : 3,
        spanGaps: true,
      };
    });
    var chart = new Chart(canvas, {
      type: bar ? "bar" : "line",
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: spec.horizontal ? "y" : "x",
        interaction: { mode: "index", intersect: false },
        scales: { x: { stacked: spec.stacked }, y: { stacked: spec.stacked, beginAtZero: true } },
        plugins: {
          legend: { labels: { usePointStyle: true } },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                return ctx.dataset.label + ": " + format(ctx.dataset.kind, ctx.parsed[spec.horizontal ? "x" : "y"]);
              },
            },
          },
        },
      },
    });
    figure.dataset.drawn = "true";
    figure.chart = chart;
  }

  function init() {
    document.querySelectorAll("figure.chart").forEach(draw);
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
    document.querySelectorAll("[data-poll]").forEach(poll);
  }

  // A job's progress (models page: "train now"): the element names a JSON URL; its text and
  // the <progress> inside follow it until the job ends, then the page reloads.
  function poll(element) {
    var url = element.getAttribute("data-poll");
    var bar = element.querySelector("progress");
    var text = element.querySelector("[data-poll-text]");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (job) {
          if (bar && typeof job.progress === "number") bar.value = job.progress;
          if (text && job.message) text.textContent = job.message;
          if (job.state === "running" || job.state === "queued") {
            setTimeout(tick, 1000);
          } else {
            element.dataset.finished = job.state;
            if (element.hasAttribute("data-poll-reload")) window.location.reload();
          }
        })
        .catch(function () { setTimeout(tick, 3000); });
    }
    tick();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

// The console's one script: draws every chart of the page (and of each fragment htmx
// swaps in) from the ECharts option the server put in its data-option attribute.
(function () {
  "use strict";

  function draw(root) {
    if (typeof window.echarts === "undefined") return;
    (root || document).querySelectorAll(".chart[data-option]").forEach(function (el) {
      if (el.dataset.drawn === "1") return;
      var chart = window.echarts.getInstanceByDom(el) || window.echarts.init(el, null, { renderer: "canvas" });
      chart.setOption(JSON.parse(el.dataset.option), true);
      el.dataset.drawn = "1";
    });
  }

  function resizeAll() {
    if (typeof window.echarts === "undefined") return;
    document.querySelectorAll(".chart[data-option]").forEach(function (el) {
      var chart = window.echarts.getInstanceByDom(el);
      if (chart) chart.resize();
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:beforeSwap", function (evt) {
    // charts about to be replaced are disposed of, so nothing keeps their canvases
    if (typeof window.echarts === "undefined") return;
    var target = evt.detail && evt.detail.target;
    if (!target) return;
    target.querySelectorAll(".chart").forEach(function (el) {
      var chart = window.echarts.getInstanceByDom(el);
      if (chart) chart.dispose();
      // no longer drawn: nothing (a test, a resize) takes a disposed chart for a drawn one
      delete el.dataset.drawn;
    });
  });
  document.addEventListener("htmx:afterSettle", function (evt) { draw(evt.detail && evt.detail.elt); });
  // an upload's progress (htmx reports the request's upload events)
  document.addEventListener("htmx:xhr:progress", function (evt) {
    var bar = document.getElementById("upload-progress");
    var d = evt.detail || {};
    if (!bar || !d.lengthComputable || !d.total) return;
    bar.hidden = false;
    bar.value = Math.round((100 * d.loaded) / d.total);
  });
  var pending = null;
  window.addEventListener("resize", function () {
    if (pending) window.clearTimeout(pending);
    pending = window.setTimeout(resizeAll, 150);
  });
})();

/* Draw each suggestion's explanation paths as a small graph. */
(function () {
  if (typeof cytoscape === 'undefined') { return; }
  document.querySelectorAll('.path-graph').forEach(function (el) {
    var elements;
    try { elements = JSON.parse(el.dataset.elements || '[]'); } catch (e) { return; }
    if (!elements.length) { el.style.display = 'none'; return; }
    var cy = cytoscape({
      container: el, elements: elements, style: window.JianglianGraph.style,
      layout: { name: 'breadthfirst', directed: false, spacingFactor: 0.9, padding: 12 },
      userZoomingEnabled: false, boxSelectionEnabled: false
    });
    el._cy = cy;
  });
})();

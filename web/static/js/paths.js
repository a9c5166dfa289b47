/* Draw each suggestion's explanation paths as a small graph: the worker at the top, the problem being
   matched (marked) below, edge labels already in the page's language (web/ui/evidence.py). */
(function () {
  if (typeof cytoscape === 'undefined') { return; }
  var style = window.JianglianGraph.style.concat([
    { selector: 'node', style: { 'font-size': 11, 'text-max-width': 110, 'text-wrap': 'ellipsis' } },
    { selector: 'edge', style: {
        'font-size': 9, 'min-zoomed-font-size': 0, 'color': '#4b5563', 'line-color': '#9ca3af',
        'target-arrow-color': '#9ca3af', 'text-background-color': '#fcfcfd', 'text-background-opacity': 0.9,
        'text-background-padding': 1 } },
    { selector: 'edge[?similar]', style: { 'line-style': 'dashed', 'target-arrow-shape': 'none' } }
  ]);
  document.querySelectorAll('.path-graph').forEach(function (el) {
    var elements;
    try { elements = JSON.parse(el.dataset.elements || '[]'); } catch (e) { return; }
    if (!elements.length) { el.style.display = 'none'; return; }
    var cy = cytoscape({
      container: el, elements: elements, style: style,
      layout: { name: 'breadthfirst', directed: false, roots: 'node[type = "Worker"]', spacingFactor: 1,
                padding: 14, avoidOverlap: true, nodeDimensionsIncludeLabels: true },
      maxZoom: 1.5,
      userZoomingEnabled: false, userPanningEnabled: false, boxSelectionEnabled: false, autoungrabify: true
    });
    el._cy = cy;
  });
})();

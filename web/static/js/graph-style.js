/* Shared cytoscape look: one colour per node label. */
window.JianglianGraph = (function () {
  var colours = {
    Worker: '#b71c1c', Skill: '#1d4ed8', Enterprise: '#047857', IndustryChain: '#7c3aed',
    District: '#b45309', Problem: '#374151'
  };
  var style = [
    { selector: 'node', style: {
        'label': 'data(label)', 'font-size': 10, 'color': '#1f2933', 'text-valign': 'bottom',
        'text-margin-y': 3, 'width': 18, 'height': 18, 'background-color': '#9ca3af',
        'text-max-width': 110, 'text-wrap': 'ellipsis', 'min-zoomed-font-size': 9 } }
  ];
  Object.keys(colours).forEach(function (label) {
    style.push({ selector: 'node[type = "' + label + '"]', style: { 'background-color': colours[label] } });
  });
  style.push({ selector: 'node.focus', style: { 'border-width': 3, 'border-color': '#f59e0b', 'width': 26, 'height': 26 } });
  style.push({ selector: 'edge', style: {
      'width': 1.5, 'line-color': '#cbd2d9', 'target-arrow-color': '#cbd2d9', 'target-arrow-shape': 'triangle',
      'curve-style': 'bezier', 'label': 'data(label)', 'font-size': 7, 'color': '#6b7280',
      'text-rotation': 'autorotate', 'min-zoomed-font-size': 12 } });
  return { colours: colours, style: style };
})();

/* Graph explorer: search a start node, click to expand neighbours, filter by node type. */
(function () {
  var config = JSON.parse(document.getElementById('graph-config').textContent);
  var container = document.getElementById('graph-canvas');
  if (typeof cytoscape === 'undefined' || !container) { return; }
  var G = window.JianglianGraph;
  document.querySelectorAll('[data-colour]').forEach(function (el) {
    el.style.background = G.colours[el.dataset.colour]; el.style.color = '#fff';
  });
  var cy = cytoscape({ container: container, style: G.style, elements: [], wheelSensitivity: 0.3 });
  window.jianglianCy = cy;
  var expanded = {};

  function types() {
    return Array.prototype.map.call(document.querySelectorAll('.type-filter:checked'), function (el) { return el.value; });
  }
  function applyFilter() {
    var keep = types();
    cy.nodes().forEach(function (n) {
      n.style('display', keep.indexOf(n.data('type')) >= 0 || n.hasClass('focus') ? 'element' : 'none');
    });
  }
  function layout() {
    cy.layout({ name: 'cose', animate: false, padding: 20, idealEdgeLength: function () { return 110; },
      nodeRepulsion: function () { return 400000; }, nodeOverlap: 20, componentSpacing: 80 }).run();
  }
  function add(elements) {
    elements.forEach(function (el) { if (cy.getElementById(el.data.id).empty()) { cy.add(el); } });
  }
  function expand(node) {
    var id = node.data('id');
    if (expanded[id]) { return; }
    expanded[id] = true;
    var params = new URLSearchParams({ label: node.data('type'), id: node.data('node_id') });
    types().forEach(function (t) { params.append('type', t); });
    fetch(config.neighbours + '?' + params.toString(), { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : { nodes: [], edges: [] }; })
      .then(function (data) { add(data.nodes); add(data.edges); applyFilter(); layout(); });
  }
  function start(el) {
    cy.elements().remove(); expanded = {};
    add([el]);
    var node = cy.getElementById(el.data.id);
    node.addClass('focus');
    expand(node);
  }
  cy.on('tap', 'node', function (evt) { expand(evt.target); });
  cy.on('dbltap', 'node', function (evt) {
    var url = config.detail[evt.target.data('type')];
    if (url) { window.location = url.replace('__ID__', encodeURIComponent(evt.target.data('node_id'))); }
  });
  document.querySelectorAll('.type-filter').forEach(function (el) {
    el.addEventListener('change', function () {
      if (el.checked) {  // a type ticked later: load it around the nodes already expanded
        var again = Object.keys(expanded);
        expanded = {};
        again.forEach(function (id) { var n = cy.getElementById(id); if (n.nonempty()) { expand(n); } });
      }
      applyFilter();
    });
  });
  document.getElementById('graph-clear').addEventListener('click', function () { cy.elements().remove(); expanded = {}; });

  var results = document.getElementById('graph-results');
  document.getElementById('graph-search').addEventListener('submit', function (e) {
    e.preventDefault();
    var q = document.getElementById('graph-q').value.trim();
    if (!q) { return; }
    fetch(config.search + '?q=' + encodeURIComponent(q), { credentials: 'same-origin' })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        results.textContent = '';
        if (!data.results.length) { results.textContent = config.text.none; return; }
        results.appendChild(document.createTextNode(config.text.pick));
        data.results.forEach(function (el) {
          var a = document.createElement('a');
          a.href = '#'; a.className = 'tag'; a.textContent = el.data.label;
          a.style.background = G.colours[el.data.type]; a.style.color = '#fff';
          a.addEventListener('click', function (e) { e.preventDefault(); start(el); });
          results.appendChild(a);
        });
        if (data.results.length === 1) { start(data.results[0]); }
      });
  });
  if (config.start) { start(config.start); }
})();

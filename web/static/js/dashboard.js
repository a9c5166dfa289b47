/* Bar chart of done / expected / target per district for one metric. */
(function () {
  var source = document.getElementById('chart-data');
  var canvas = document.getElementById('progress-chart');
  if (!source || !canvas || typeof Chart === 'undefined') { return; }
  var data = JSON.parse(source.textContent);
  var select = document.getElementById('chart-metric');
  function datasets(i) {
    var m = data.metrics[i];
    return [
      { label: data.text.done, data: m.done, backgroundColor: '#b71c1c' },
      { label: data.text.expected, data: m.expected, backgroundColor: '#f59e0b' },
      { label: data.text.target, data: m.target, backgroundColor: '#cbd2d9' }
    ];
  }
  var chart = new Chart(canvas, {
    type: 'bar',
    data: { labels: data.labels, datasets: datasets(0) },
    options: { responsive: true, maintainAspectRatio: false, animation: false,
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
  });
  window.jianglianChart = chart;
  if (select) {
    select.addEventListener('change', function () {
      chart.data.datasets = datasets(parseInt(select.value, 10));
      chart.update();
    });
  }
})();

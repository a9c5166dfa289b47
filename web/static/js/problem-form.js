/* The problem form: narrow the enterprise list by typed text, and add skills from the taxonomy
   (the datalist offers names and aliases; the server maps an alias to its skill). */
(function () {
  var filter = document.getElementById('enterprise-filter');
  var select = document.getElementById('enterprise_id');
  if (filter && select) {
    filter.addEventListener('input', function () {
      var text = filter.value.trim().toLowerCase();
      var first = null;
      Array.prototype.forEach.call(select.options, function (option) {
        var match = !text || option.text.toLowerCase().indexOf(text) >= 0;
        option.hidden = !match;
        option.disabled = !match;
        if (match && first === null) { first = option; }
      });
      var current = select.options[select.selectedIndex];
      if (first && (!current || current.hidden)) { select.value = first.value; followDistrict(); }
    });
    select.addEventListener('change', followDistrict);
  }
  // an enterprise option reads "name(district)": the district follows the chosen enterprise
  function followDistrict() {
    var district = document.getElementById('district');
    var option = select.options[select.selectedIndex];
    var found = option && /（([^（）]+)）$/.exec(option.text);
    if (!district || !found) { return; }
    if (Array.prototype.some.call(district.options, function (o) { return o.value === found[1]; })) {
      district.value = found[1];
    }
  }
  var pick = document.getElementById('skill-pick');
  var add = document.getElementById('skill-add');
  var skills = document.getElementById('skills');
  if (pick && add && skills) {
    var known = {};
    Array.prototype.forEach.call(document.querySelectorAll('#skill-options option'), function (option) {
      known[option.value] = true;
    });
    function addSkill() {
      var value = pick.value.trim();
      if (!value) { return; }
      var parts = skills.value.split(/[、,，;；|\n]/).map(function (p) { return p.trim(); }).filter(Boolean);
      if (parts.indexOf(value) < 0) { parts.push(value); }
      skills.value = parts.join('、');
      pick.value = '';
    }
    add.addEventListener('click', addSkill);
    pick.addEventListener('change', function () { if (known[pick.value.trim()]) { addSkill(); } });
    pick.addEventListener('keydown', function (event) {
      if (event.key === 'Enter') { event.preventDefault(); addSkill(); }
    });
  }
})();

/* On narrow screens the sidebar menu folds behind the 菜单 button in the top bar. Loaded right after
   the sidebar (not deferred), so the menu is folded before the first paint. */
(function () {
  var sidebar = document.querySelector('.sidebar');
  var button = sidebar && sidebar.querySelector('.menu-toggle');
  if (!button) { return; }
  function set(open) {
    sidebar.classList.toggle('menu-folded', !open);
    button.setAttribute('aria-expanded', open ? 'true' : 'false');
  }
  set(false);
  button.addEventListener('click', function () { set(sidebar.classList.contains('menu-folded')); });
})();

// The colour theme: light, dark, or the system's (the default), remembered per browser.
//
// A classic script loaded in <head> (base.html), not a module: it sets data-theme on <html>
// before the page is painted, so a chosen theme never flashes the other one first. The
// colours themselves are CSS (light-dark() follows color-scheme, set from data-theme).

(() => {
  const KEY = "agentsite.theme";
  const THEMES = ["system", "light", "dark"];
  const root = document.documentElement;

  function saved() {
    try {
      const theme = localStorage.getItem(KEY);
      return THEMES.includes(theme) ? theme : "system";
    } catch {
      return "system"; // storage refused (private mode, policy): the system's theme
    }
  }

  function apply(theme) {
    if (theme === "system") delete root.dataset.theme;
    else root.dataset.theme = theme;
    // Stylesheets made for one scheme (code highlighting) follow the choice too.
    for (const sheet of document.querySelectorAll("link[data-theme-sheet]")) {
      const scheme = sheet.dataset.themeSheet;
      sheet.media = theme === "system" ? `(prefers-color-scheme: ${scheme})` : theme === scheme ? "all" : "not all";
    }
  }

  apply(saved());
  document.addEventListener("DOMContentLoaded", () => {
    apply(saved()); // the stylesheets after this script exist now
    const select = document.getElementById("theme-select");
    if (!select) return;
    select.value = saved();
    select.addEventListener("change", () => {
      try {
        localStorage.setItem(KEY, select.value);
      } catch {
        // Not remembered, but still applied to this page.
      }
      apply(select.value);
    });
  });
  // Another tab changed it.
  window.addEventListener("storage", (event) => {
    if (event.key !== KEY) return;
    apply(saved());
    const select = document.getElementById("theme-select");
    if (select) select.value = saved();
  });
})();

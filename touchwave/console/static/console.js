// The campaign page's funnel refreshes itself: every element with data-refresh is
// replaced by the HTML fragment at that address every data-every milliseconds.
// Without JavaScript the page still works; the Reload link does the same by hand.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const region of document.querySelectorAll("[data-refresh]")) {
    const every = Number(region.dataset.every || 2000);
    const refresh = async () => {
      try {
        const response = await fetch(region.dataset.refresh, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (response.ok) {
          region.innerHTML = await response.text();
        }
      } catch (error) {
        console.warn("funnel refresh failed", error);
      }
      window.setTimeout(refresh, every);
    };
    window.setTimeout(refresh, every);
  }
});

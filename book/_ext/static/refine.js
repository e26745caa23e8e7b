// A figure of the book opens full-size on click; a second click or Escape closes it.
document.addEventListener("click", (event) => {
  const figure = event.target.closest(".rf-figure");
  if (!figure || (event.target.tagName !== "IMG" && !figure.classList.contains("rf-zoomed"))) return;
  const zoomed = figure.classList.toggle("rf-zoomed");
  document.documentElement.classList.toggle("rf-noscroll", zoomed);
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  document.querySelectorAll(".rf-zoomed").forEach((f) => f.classList.remove("rf-zoomed"));
  document.documentElement.classList.remove("rf-noscroll");
});

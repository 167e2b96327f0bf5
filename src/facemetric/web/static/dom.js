// facemetric pages' shared helpers, loaded before each page's own script. No build step.
"use strict";

const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = "facemetric-admin-token"; // the admin token, kept for this tab only

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

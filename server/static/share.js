/* A pass's page in the resident portal (portal_pass.html): copy the link; share it (with
 * the QR image where the phone can) through the Web Share API. Its words come from the
 * page (data-* on #share), in the page's language. */
(function () {
  const words = document.getElementById("share").dataset;
  const link = document.getElementById("share-link");
  const note = document.getElementById("share-note");
  const share = document.getElementById("share-pass");
  const qrUrl = document.getElementById("save-qr").href;
  document.getElementById("copy-link").addEventListener("click", async function () {
    try {
      await navigator.clipboard.writeText(link.value);
      note.textContent = words.copied;
    } catch (error) {
      link.select();
      note.textContent = document.execCommand("copy") ? words.copied : words.copyByHand;
    }
  });
  if (!navigator.share) return;
  share.hidden = false;
  let file = null;  // fetched ahead: share() must run while the tap still counts
  fetch(qrUrl, {credentials: "same-origin"}).then(function (answer) {
    return answer.ok ? answer.blob() : null;
  }).then(function (blob) {
    const candidate = blob && new File([blob], "pass-qr.png", {type: "image/png"});
    if (candidate && navigator.canShare && navigator.canShare({files: [candidate]})) file = candidate;
  }).catch(function () {});
  share.addEventListener("click", function () {
    const data = {title: words.shareTitle, text: words.shareText, url: link.value};
    if (file) data.files = [file];
    navigator.share(data).catch(function () {});
  });
})();

// Mercado Pago's Secure Fields on the portal's add-card page. The card number, expiry and
// security code are typed in Mercado Pago's iframes; this script asks Mercado Pago for a card
// token (with the cardholder's name and document, which stay in the browser: their inputs have
// no name) and posts the form with the token only. The portal never sees the card.
(function () {
  "use strict";
  var form = document.getElementById("card-fields");
  if (!form) {
    return;
  }
  var failed = document.getElementById("fields-error");
  var submit = form.querySelector("button[type=submit]");
  if (typeof window.MercadoPago !== "function") {
    failed.hidden = false;
    submit.disabled = true;
    return;
  }
  var mp = new window.MercadoPago(form.dataset.publicKey, { locale: form.dataset.locale });
  mp.fields.create("cardNumber", { placeholder: "•••• •••• •••• ••••" }).mount("fields-number");
  mp.fields.create("expirationDate", { placeholder: "MM/AA" }).mount("fields-expiry");
  mp.fields.create("securityCode", { placeholder: "•••" }).mount("fields-code");
  var token = form.elements.namedItem("setup_ref");
  form.addEventListener("submit", function (e) {
    if (token.value) {
      return; // the token is in: post it
    }
    e.preventDefault();
    failed.hidden = true;
    submit.disabled = true;
    mp.fields.createCardToken({
      cardholderName: document.getElementById("fields-holder").value,
      identificationType: document.getElementById("fields-doc-type").value,
      identificationNumber: document.getElementById("fields-doc-number").value
    }).then(function (t) {
      token.value = t.id;
      form.submit();
    }).catch(function () {
      failed.hidden = false;
      submit.disabled = false;
    });
  });
})();

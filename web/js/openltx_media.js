// OpenLTX: media inputs with upload + preview in ComfyUI's web frontend.
//
// The frontend gives a combo input flagged `audio_upload` an upload button (core extension
// Comfy.UploadAudio) that expects an audio player widget named "audioUI" on the same node, but
// it adds that player (Comfy.AudioWidget) only to core node names (LoadAudio, SaveAudio, ...).
// On any other node the upload widget throws while the node is built, and the node then goes
// out without a class_type when the workflow is queued (HTTP 400).  This extension gives the
// pack's nodes with an `audio_upload` input the same player, placed before the upload button as
// on core's LoadAudio, so upload, drag-and-drop and the preview player work (frontends 1.32 to
// at least 1.58).
import { app } from "../../../scripts/app.js";

const AUDIO_UI = ["AUDIO_UI", {}];

function withAudioPlayer(required) {
  // {audio, ..., upload} -> {audio, ..., audioUI, upload}: the upload widget looks the player up
  // when it is created, so the player must come first.
  const out = {};
  for (const [name, spec] of Object.entries(required)) {
    if (name === "audioUI") continue;
    if (name === "upload") out.audioUI = AUDIO_UI;
    out[name] = spec;
  }
  if (!("audioUI" in out)) out.audioUI = AUDIO_UI;
  return out;
}

app.registerExtension({
  name: "OpenLTX.MediaInputs",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const name = nodeData?.name ?? nodeType?.prototype?.comfyClass ?? "";
    if (!name.startsWith("OpenLTX")) return;
    const required = nodeData?.input?.required;
    if (!required) return;
    const hasAudioUpload = Object.values(required).some(
      (spec) => Array.isArray(spec) && spec[1] && spec[1].audio_upload === true,
    );
    if (hasAudioUpload) nodeData.input.required = withAudioPlayer(required);
  },
  nodeCreated(node) {
    // The player is display only: older frontends (1.32) put its empty value into the prompt.
    if (!(node?.comfyClass ?? node?.type ?? "").startsWith("OpenLTX")) return;
    for (const widget of node.widgets ?? []) {
      if (widget.name !== "audioUI") continue;
      widget.serialize = false;
      widget.options = { ...(widget.options ?? {}), serialize: false };
    }
  },
});

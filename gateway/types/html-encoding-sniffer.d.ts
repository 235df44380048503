// html-encoding-sniffer 4 ships no types: the WHATWG encoding sniffing algorithm (HTML §13.2.3.2).
declare module 'html-encoding-sniffer' {
  function htmlEncodingSniffer(bytes: Uint8Array, options?: { transportLayerEncodingLabel?: string; defaultEncoding?: string }): string;
  export = htmlEncodingSniffer;
}

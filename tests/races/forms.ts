/** The fields of a form in a console page, as a browser would send them back (unchecked boxes left out). */
export function formFields(html: string, formId: string): Record<string, string> {
  const form = new RegExp(`<form[^>]*id="${formId}"[^>]*>([\\s\\S]*?)</form>`).exec(html)?.[1];
  if (!form) throw new Error(`no form #${formId} in the page`);
  const decode = (text: string) => text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#34;|&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
  const fields: Record<string, string> = {};
  for (const [tag] of form.matchAll(/<input\b[^>]*>/g)) {
    const name = /\bname="([^"]*)"/.exec(tag)?.[1];
    if (!name || /type="file"/.test(tag)) continue;
    if (/type="checkbox"/.test(tag)) {
      if (/\bchecked\b/.test(tag)) fields[name] = 'on';
      continue;
    }
    fields[name] = decode(/\bvalue="([^"]*)"/.exec(tag)?.[1] ?? '');
  }
  // Browsers send a text area's lines with CRLF (and drop the newline right after the opening tag).
  for (const [, name, text] of form.matchAll(/<textarea\b[^>]*\bname="([^"]*)"[^>]*>([\s\S]*?)<\/textarea>/g)) {
    fields[name] = decode(text).replace(/^\r?\n/, '').replace(/\r?\n/g, '\r\n');
  }
  for (const [, name, options] of form.matchAll(/<select\b[^>]*\bname="([^"]*)"[^>]*>([\s\S]*?)<\/select>/g)) {
    fields[name] = /<option value="([^"]*)"\s+selected/.exec(options)?.[1] ?? '';
  }
  return fields;
}

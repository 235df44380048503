import { domainToASCII } from 'node:url';

/**
 * An internationalised domain as people write it (bücher.de) in the A-label form (RFC 5890) that
 * envelopes, SPF, DKIM and DMARC carry (xn--bcher-kva.de). ASCII and invalid names are returned as
 * they are: checks further on say what is wrong with them.
 */
export function aLabelDomain(domain: string): string {
  return /[^\x00-\x7f]/.test(domain) ? domainToASCII(domain.toLowerCase()) || domain : domain;
}

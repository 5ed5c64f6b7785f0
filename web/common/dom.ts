/**
 * The few DOM helpers both pages use: plain DOM, no framework.
 */

/** The element with this id, checked to be of the expected kind; a missing one is a bug in the page's HTML. */
export function byId<T extends HTMLElement>(id: string, kind: new () => T): T {
  const found = document.getElementById(id);
  if (!(found instanceof kind)) throw new Error(`the page has no <${kind.name}> with id "${id}"; is the HTML from the same build as the script?`);
  return found;
}

type Child = Node | string | null | undefined | false;

/** `element("td", { className: "x" }, "text", otherNode)`: an element with properties and children. */
export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  properties: Partial<Pick<HTMLElementTagNameMap[K], "className" | "id" | "title" | "hidden">> & { attributes?: Record<string, string> } = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  const { attributes, ...rest } = properties;
  Object.assign(node, rest);
  for (const [name, value] of Object.entries(attributes ?? {})) node.setAttribute(name, value);
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

/** The message of anything thrown. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.name && error.name !== "Error" ? `${error.name}: ${error.message}` : error.message;
  return String(error);
}

// The subset of gstreamer-superficial (CommonJS, ships no types) that services/media uses.
declare module 'gstreamer-superficial' {
  /** A bus message: `type` plus the fields of its GstStructure (64-bit integers arrive as strings). */
  export interface BusMessage {
    type: string;
    name?: string;
    message?: string;
    _src_element_name?: string;
    [field: string]: unknown;
  }

  /** An element found with findChild: every GObject property is readable/writable by name. */
  export interface GstElementHandle {
    [property: string]: unknown;
  }

  export class Pipeline {
    constructor(launch: string);
    play(): void;
    pause(): void;
    stop(): void;
    sendEOS(): void;
    forceKeyUnit(elementName: string, count: number): boolean;
    findChild(name: string): GstElementHandle | undefined;
    pollBus(callback: (msg: BusMessage) => void): void;
  }
}

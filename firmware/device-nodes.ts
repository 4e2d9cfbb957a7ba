// Which /dev nodes a board profile needs in its containers (docker-compose.yml `devices:`), derived
// from the profile so that the compose file can be checked against it: the GPIO character devices
// (lines are found by chip label at run time, the node only grants access), the I2C bus of the board
// and of each power device, serial ports of charge controllers, and the camera and hardware encoder.
import type { BoardProfile } from '../hardware/boards/index.ts';

export interface DeviceNodes {
  kitd: string[];
  media: string[];
}

/** GPIO chips a board's lines live on, in /dev order (Jetson Orin spans two chips). */
const GPIO_CHIPS: Record<string, string[]> = {
  'pinctrl-bcm2711': ['/dev/gpiochip0'],
  'pinctrl-bcm2835': ['/dev/gpiochip0'],
  // Pi 5: RP1's header bank is gpiochip0 on 6.6.47+ kernels (gpiochip4 before)
  'pinctrl-rp1': ['/dev/gpiochip0', '/dev/gpiochip4'],
  'tegra234-gpio': ['/dev/gpiochip0', '/dev/gpiochip1'],
  'popkit-sim': [],
};

/** The encoder's V4L2 memory-to-memory node where the encoder is a V4L2 device. */
const ENCODER_NODES: Record<string, string[]> = {
  v4l2h264enc: ['/dev/video11'],
  nvv4l2h264enc: ['/dev/nvhost-msenc', '/dev/nvmap', '/dev/nvhost-ctrl'],
  x264enc: [],
};

/** What libcamera opens besides the video node (the first of each kind). */
const LIBCAMERA_NODES = [
  '/dev/media0',
  '/dev/v4l-subdev0',
  '/dev/dma_heap/linux,cma',
  '/dev/dma_heap/system',
];

export function deviceNodesFor(p: BoardProfile): DeviceNodes {
  const kitd = new Set<string>();
  const chips = new Set(Object.values(p.gpio).map((l) => l.chip));
  for (const c of chips) for (const n of GPIO_CHIPS[c] ?? []) kitd.add(n);
  if (p.id !== 'sim') kitd.add(`/dev/i2c-${p.i2cBus}`);
  for (const d of p.powerDevices) {
    if (d.bus !== undefined && p.id !== 'sim') kitd.add(`/dev/i2c-${d.bus}`);
    if (d.port?.startsWith('/dev/')) kitd.add(d.port);
  }
  const media = new Set<string>();
  if (p.video.source === 'v4l2src' || p.video.source === 'libcamerasrc') media.add('/dev/video0');
  // libcamera drives a CSI camera through the media controller and the sensor's sub-device, and
  // allocates frames from the DMA heaps (Raspberry Pi's kernels have both heaps)
  if (p.video.source === 'libcamerasrc') for (const n of LIBCAMERA_NODES) media.add(n);
  for (const n of ENCODER_NODES[p.video.encoder] ?? []) media.add(n);
  return { kitd: [...kitd].sort(), media: [...media].sort() };
}

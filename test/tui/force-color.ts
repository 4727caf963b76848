// Imported before ink so chalk, which reads this once when it loads, emits colours.
process.env.FORCE_COLOR = '1'
export {}

using System.Globalization;
using System.Text.RegularExpressions;

namespace Orchestrator.Tools.Bench;

/// <summary>
/// The demo guest writing to its own disk as fast as its throttle lets it, told by its NoCloud user-data (a "#!" script the
/// demo init runs at boot), and the rates it prints on its console read back. Writes bypass the guest's page cache
/// (busybox dd oflag=direct) 1 MiB into the disk, clear of the boot counter in its first sector.
/// </summary>
public static partial class GuestDiskWriter
{
    /// <summary>
    /// The user-data: a writer loop in the background printing "orchestrator-io SEQ BYTES START END" per chunk, the times
    /// from /proc/uptime (10 ms; the demo busybox's dd prints no rate of its own).
    /// </summary>
    public static readonly byte[] UserData = System.Text.Encoding.ASCII.GetBytes(
        """
        #!/bin/sh
        (
            dev=
            while [ -z "$dev" ]; do
                for s in /sys/block/vd*/serial; do
                    [ "$(cat "$s" 2>/dev/null)" = orchestrator-disk ] && dev=/dev/$(basename "$(dirname "$s")")
                done
                [ -n "$dev" ] || sleep 1
            done
            seq=0
            while :; do
                seq=$((seq + 1))
                start=$(cut -d' ' -f1 /proc/uptime)
                dd if=/dev/zero of="$dev" bs=65536 count=64 seek=16 oflag=direct 2>/dev/null
                echo "orchestrator-io $seq 4194304 $start $(cut -d' ' -f1 /proc/uptime)"
            done
        ) </dev/null &

        """.Replace("\r", "", StringComparison.Ordinal));

    /// <summary>The lines of a VM's console log so far (QEMU appends to it meanwhile).</summary>
    public static async Task<IReadOnlyList<string>> ReadConsoleAsync(string path)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream, System.Text.Encoding.UTF8);
        return (await reader.ReadToEndAsync()).Split('\n');
    }

    /// <summary>One chunk as the guest timed it (seconds since its boot).</summary>
    public sealed record Sample(int Seq, long Bytes, double Start, double End)
    {
        public double Seconds => Math.Max(End - Start, 0.01);
    }

    [GeneratedRegex(@"orchestrator-io (\d+) (\d+) ([0-9.]+) ([0-9.]+)\s*$")]
    private static partial Regex SampleLine();

    public static IEnumerable<Sample> Parse(IEnumerable<string> lines) =>
        lines.Select(l => SampleLine().Match(l)).Where(m => m.Success).Select(m => new Sample(
            int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
            long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
            double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture),
            double.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture)));

    /// <summary>
    /// Reads the console tail until <paramref name="count"/> chunks after <paramref name="afterSeq"/> were written (and
    /// <paramref name="startWhen"/> held for the first of them, if given); their bytes over their seconds.
    /// </summary>
    /// <param name="tail">the VM's console tail now (its last lines; polled every half second).</param>
    public static async Task<(double BytesPerSecond, int LastSeq)> MeasureAsync(Func<Task<IReadOnlyList<string>>> tail, int afterSeq, int count,
        TimeSpan timeout, CancellationToken ct, Func<Sample, bool>? startWhen = null)
    {
        var seen = new SortedDictionary<int, Sample>();
        var deadline = DateTime.UtcNow + timeout;
        var from = afterSeq;
        while (true)
        {
            foreach (var sample in Parse(await tail()).Where(s => s.Seq > afterSeq))
            {
                seen[sample.Seq] = sample;
            }

            if (startWhen is not null && from == afterSeq && seen.Values.FirstOrDefault(startWhen) is { } start)
            {
                from = start.Seq; // the change shows: measure from the chunk after it
            }

            var window = seen.Values.Where(s => s.Seq > from).Take(count).ToList();
            if ((startWhen is null || from != afterSeq) && window.Count == count && window[^1].Seq - window[0].Seq == count - 1)
            {
                // From the first chunk's start to the last one's end: the loop's own gaps count against the guest, as they would for any writer.
                return (window.Sum(s => s.Bytes) / Math.Max(window[^1].End - window[0].Start, 0.01), window[^1].Seq);
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the guest printed {seen.Count} disk write rate(s) after chunk {afterSeq} within {timeout.TotalSeconds:0} s " +
                                           $"({count} consecutive wanted{(startWhen is null ? "" : ", after the change shows")})");
            }

            await Task.Delay(500, ct);
        }
    }
}

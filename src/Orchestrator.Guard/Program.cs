// orchestrator-guard --socket PATH --fence-after-ms N [--log PATH]: the per-host fence guard (see FenceGuard).
using System.Globalization;
using Orchestrator.Guard;
using Orchestrator.Guard.Protocol;

string? socket = null;
string? log = null;
long fenceAfterMs = 10_000;
for (var i = 0; i < args.Length; i++)
{
    var value = i + 1 < args.Length ? args[i + 1] : null;
    switch (args[i])
    {
        case "--socket" when value is not null:
            socket = Path.GetFullPath(value);
            i++;
            break;
        case "--log" when value is not null:
            log = Path.GetFullPath(value);
            i++;
            break;
        case "--fence-after-ms" when value is not null && long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) && ms > 0:
            fenceAfterMs = ms;
            i++;
            break;
        default:
            Console.Error.WriteLine($"orchestrator-guard: unexpected argument '{args[i]}'");
            Console.Error.WriteLine("usage: orchestrator-guard --socket PATH [--fence-after-ms N] [--log PATH]");
            return 2;
    }
}

if (socket is null)
{
    Console.Error.WriteLine("usage: orchestrator-guard --socket PATH [--fence-after-ms N] [--log PATH]");
    return 2;
}

using var guard = new FenceGuard(new GuardOptions(socket, TimeSpan.FromMilliseconds(fenceAfterMs), log));
return guard.Run();

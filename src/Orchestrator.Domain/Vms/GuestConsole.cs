namespace Orchestrator.Domain.Vms;

/// <summary>
/// What a VM's serial console said: the last lines (kept for "show VM") and whether the guest said it is up: our images'
/// ready banner, or for a full OS cloud-init's "finished" line (its boot configuration, user-data included, is done).
/// Fed one line at a time, in order.
/// </summary>
public sealed class GuestConsole(int tailLines = GuestConsole.DefaultTailLines)
{
    /// <summary>What our guest images print once they are up: the VM counts as Ready from that line on.</summary>
    public const string ReadyBanner = "ORCHESTRATOR-GUEST-READY";

    /// <summary>cloud-init's final message starts so: "Cloud-init v. 22.4.2 finished at &lt;time&gt;. Datasource …".</summary>
    public const string CloudInitVersion = "Cloud-init v. ";

    public const string CloudInitFinished = " finished at ";

    public const int DefaultTailLines = 20;

    private readonly Queue<string> _tail = new();

    /// <summary>Whether the banner has been seen. A guest is ready once; a later banner (a reboot inside it) changes nothing.</summary>
    public bool Ready { get; private set; }

    /// <summary>The last lines, oldest first.</summary>
    public IReadOnlyList<string> Tail => [.. _tail];

    /// <summary>Keeps the line; true when it is the line that made the guest ready.</summary>
    public bool Add(string line)
    {
        if (_tail.Count == tailLines)
        {
            _tail.Dequeue();
        }

        _tail.Enqueue(line);
        if (Ready || !IsReadyLine(line))
        {
            return false;
        }

        Ready = true;
        return true;
    }

    /// <summary>The banner or cloud-init's final message, wherever on the line (systemd prefixes a unit's output with its name).</summary>
    public static bool IsReadyLine(string line) =>
        line.Contains(ReadyBanner, StringComparison.Ordinal) ||
        (line.Contains(CloudInitVersion, StringComparison.Ordinal) &&
         line.IndexOf(CloudInitFinished, line.IndexOf(CloudInitVersion, StringComparison.Ordinal), StringComparison.Ordinal) >= 0);
}

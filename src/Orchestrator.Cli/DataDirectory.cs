namespace Orchestrator.Cli;

/// <summary>
/// Where a node keeps its data and where the client looks for it. One rule for both, so a client
/// started by the same user finds the node without flags.
/// </summary>
public static class DataDirectory
{
    public const string EnvironmentVariable = "ORCHESTRATOR_DATA";

    /// <summary>
    /// <c>--data DIR</c> &gt; <c>$ORCHESTRATOR_DATA</c> &gt; <c>$XDG_DATA_HOME/orchestrator</c> &gt;
    /// <c>~/.local/share/orchestrator</c>. Returns a full path; creates nothing.
    /// </summary>
    public static string Resolve(string? flag) => Resolve(flag, Environment.GetEnvironmentVariable);

    /// <inheritdoc cref="Resolve(string?)"/>
    /// <param name="flag">The value of <c>--data</c>, or null.</param>
    /// <param name="getEnvironmentVariable">Reads an environment variable (injectable for tests).</param>
    public static string Resolve(string? flag, Func<string, string?> getEnvironmentVariable)
    {
        ArgumentNullException.ThrowIfNull(getEnvironmentVariable);

        if (!string.IsNullOrWhiteSpace(flag))
        {
            return Path.GetFullPath(flag);
        }

        var fromEnv = getEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            return Path.GetFullPath(fromEnv);
        }

        // The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
        var xdg = getEnvironmentVariable("XDG_DATA_HOME");
        if (!string.IsNullOrWhiteSpace(xdg) && Path.IsPathRooted(xdg))
        {
            return Path.Combine(Path.GetFullPath(xdg), "orchestrator");
        }

        var home = getEnvironmentVariable("HOME");
        if (string.IsNullOrWhiteSpace(home))
        {
            home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        }

        if (string.IsNullOrWhiteSpace(home))
        {
            throw new InvalidOperationException(
                $"cannot choose a data directory: no home directory; pass --data DIR or set {EnvironmentVariable}");
        }

        return Path.Combine(Path.GetFullPath(home), ".local", "share", "orchestrator");
    }
}

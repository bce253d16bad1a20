using Akka.Configuration;
using Akka.Configuration.Hocon;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Actors.Settings;

/// <summary>How the node's log lines are written: one line per entry, as text for people or JSON for log shippers.</summary>
public enum LogFormat
{
    Text,
    Json,
}

/// <summary>
/// The <c>orchestrator.logging</c> section: one log pipeline (Microsoft.Extensions.Logging) for the node's own lines and
/// Akka's, a format, a default level, levels per category (a category and every category under it: "Akka.Cluster"
/// covers "Akka.Cluster.ClusterCoreDaemon"), and an optional file that receives the same lines.
/// </summary>
/// <param name="File">full path of the log file; null: no file (the console only).</param>
public sealed record LoggingSettings(LogFormat Format, LogLevel Level, IReadOnlyDictionary<string, LogLevel> Levels, string? File)
{
    public static readonly LoggingSettings Default = new(LogFormat.Text, LogLevel.Information, new Dictionary<string, LogLevel>(), null);

    private const string Known = "Trace, Debug, Information, Warning, Error, Critical, None";

    /// <summary>The most verbose level any category is configured at: what Akka must let through for MEL to filter.</summary>
    public LogLevel MostVerbose => Levels.Values.Append(Level).Min();

    /// <summary>
    /// Akka filters before its loggers see an event, so its own level is the most verbose one configured: a category set
    /// to Debug gets its Debug lines, and every other category is filtered by MEL at its own level.
    /// </summary>
    public string AkkaLogLevel => MostVerbose switch
    {
        LogLevel.Trace or LogLevel.Debug => "DEBUG",
        LogLevel.Information => "INFO",
        LogLevel.Warning => "WARNING",
        LogLevel.Error or LogLevel.Critical => "ERROR",
        _ => "OFF",
    };

    /// <param name="c">the <c>orchestrator.logging</c> section, or null for the defaults.</param>
    /// <param name="dataDir">where a relative <c>file</c> points.</param>
    public static LoggingSettings Create(Config? c, string dataDir)
    {
        if (c is null || c.IsEmpty)
        {
            return Default;
        }

        var format = c.GetString("format", "text") switch
        {
            "text" => LogFormat.Text,
            "json" => LogFormat.Json,
            var other => throw new ConfigurationException($"orchestrator.logging.format: unknown format '{other}' (known: text, json)"),
        };
        var level = ParseLevel("orchestrator.logging.level", c.GetString("level", "Information"));
        var levels = new Dictionary<string, LogLevel>(StringComparer.Ordinal);
        if (c.HasPath("levels") && c.GetValue("levels") is { } value)
        {
            if (!value.IsObject())
            {
                throw new ConfigurationException(
                    "orchestrator.logging.levels: expected an object of category = level, e.g. levels { \"Akka.Cluster\" = Warning }");
            }

            CollectLevels(value.GetObject(), "", levels);
        }

        var file = c.GetString("file", "");
        return new LoggingSettings(format, level, levels, string.IsNullOrWhiteSpace(file) ? null : Path.GetFullPath(file, dataDir));
    }

    /// <summary>
    /// Categories are dotted names, quoted (<c>"Akka.Cluster" = Warning</c>) or not; unquoted, HOCON nests them
    /// (<c>Akka { Cluster = Warning }</c>), so nested objects are joined back into dotted names.
    /// </summary>
    private static void CollectLevels(HoconObject obj, string prefix, Dictionary<string, LogLevel> levels)
    {
        foreach (var (key, value) in obj.Items)
        {
            var category = prefix + key;
            if (value.IsObject())
            {
                CollectLevels(value.GetObject(), category + ".", levels);
            }
            else if (value.IsString())
            {
                levels[category] = ParseLevel($"orchestrator.logging.levels.\"{category}\"", value.GetString());
            }
            else
            {
                throw new ConfigurationException($"orchestrator.logging.levels.\"{category}\": expected a level ({Known})");
            }
        }
    }

    private static LogLevel ParseLevel(string path, string? text) =>
        Enum.TryParse<LogLevel>(text, ignoreCase: true, out var level) && Enum.IsDefined(level) && !int.TryParse(text, out _)
            ? level
            : throw new ConfigurationException($"{path}: unknown level '{text}' (known: {Known})");
}
